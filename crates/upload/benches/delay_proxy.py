#!/usr/bin/env python3
"""A TCP proxy on 127.0.0.1 that holds every byte for DELAY seconds in each direction, so a
loopback link gets a round trip of 2 * DELAY (no tc/netem needed). Order is kept: every read
is written DELAY later, in the order read.

usage: delay_proxy.py LISTEN_PORT TARGET_PORT DELAY_SECONDS   (prints "PROXY READY")
"""
import asyncio
import sys

LISTEN, TARGET, DELAY = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
# Bytes held in one direction before reading pauses.
HELD_MAX = 64 << 20


async def pump(reader, writer):
    loop = asyncio.get_running_loop()
    try:
        while True:
            data = await reader.read(1 << 20)
            if not data:
                loop.call_later(DELAY, writer.close)
                return
            loop.call_later(DELAY, writer.write, data)
            while writer.transport.get_write_buffer_size() > HELD_MAX:
                await asyncio.sleep(0.001)
    except (ConnectionError, OSError):
        writer.close()


async def handle(client_reader, client_writer):
    server_reader, server_writer = await asyncio.open_connection("127.0.0.1", TARGET)
    await asyncio.gather(pump(client_reader, server_writer), pump(server_reader, client_writer))


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", LISTEN)
    print("PROXY READY", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
