//! A tokio client for HTTP and UDP trackers (feature `tokio`), built on the sans-IO cores.
//!
//! HTTP goes over a plain [`TcpStream`] with the minimal HTTP/1.1 codec in
//! [`http1`] (no TLS, no redirects, no compression); UDP over a
//! [`UdpSocket`] driven by [`UdpSession`]. Connection ids are cached per
//! tracker address across calls.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use piecework_metainfo::InfoHashV1;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

use crate::http::{parse_announce_response, parse_scrape_response, success_body};
use crate::udp::Family;
use crate::udp_session::{Operation, Output, UdpSession, UdpSettings};
use crate::{Announce, AnnounceResponse, Error, Limits, Scheme, ScrapeResponse, TrackerUrl, http1};

/// Settings for a [`Client`]. Every one has a safe default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientSettings {
    limits: Limits,
    http_timeout: Duration,
    udp: UdpSettings,
    bind_v4: SocketAddr,
    bind_v6: SocketAddr,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientSettings {
    /// Default limits, a 30 s deadline for a whole HTTP exchange (resolve, connect, request,
    /// response), BEP 15 timing for UDP, and sockets bound to the unspecified address.
    pub fn new() -> Self {
        Self {
            limits: Limits::new(),
            http_timeout: Duration::from_secs(30),
            udp: UdpSettings::new(),
            bind_v4: SocketAddr::from(([0, 0, 0, 0], 0)),
            bind_v6: SocketAddr::from(([0u16; 8], 0)),
        }
    }
    /// Response limits (HTTP body size, peers, scrape entries); also applied to UDP.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self.udp = self.udp.limits(limits);
        self
    }
    /// Deadline for one HTTP announce or scrape, from name resolution to the last byte.
    pub fn http_timeout(mut self, timeout: Duration) -> Self {
        self.http_timeout = timeout;
        self
    }
    /// UDP timing (its limits are replaced by [`ClientSettings::limits`]).
    pub fn udp(mut self, udp: UdpSettings) -> Self {
        self.udp = udp.limits(self.limits);
        self
    }
    /// Local addresses to bind UDP sockets (and, if not unspecified, TCP sockets) to, for IPv4
    /// and IPv6 trackers. Port 0 picks a free port.
    pub fn bind(mut self, v4: SocketAddr, v6: SocketAddr) -> Self {
        self.bind_v4 = v4;
        self.bind_v6 = v6;
        self
    }
}

/// Announces to and scrapes `http://` and `udp://` trackers.
#[derive(Debug, Default)]
pub struct Client {
    settings: ClientSettings,
    connection_ids: Mutex<HashMap<SocketAddr, (u64, std::time::Instant)>>,
}

impl Client {
    /// A client with `settings`.
    pub fn new(settings: ClientSettings) -> Self {
        Self { settings, connection_ids: Mutex::new(HashMap::new()) }
    }

    /// Announces to the tracker at `url`. A `failure reason` or UDP error packet is
    /// [`Error::TrackerFailure`].
    pub async fn announce(&self, url: &str, announce: &Announce) -> Result<AnnounceResponse, Error> {
        let url = TrackerUrl::parse(url)?;
        match url.scheme() {
            Scheme::Http => {
                let body = self.http_get(&url, &url.announce_target(announce)).await?;
                parse_announce_response(&body, &self.settings.limits)
            }
            Scheme::Udp => match self.udp(&url, Operation::Announce(announce.clone())).await? {
                Output::Announced(r) => Ok(r),
                Output::Failed(e) => Err(e),
                Output::Scraped(_) => Err(Error::InvalidState),
            },
        }
    }

    /// Scrapes `hashes` from the tracker whose announce URL is `url` (the scrape URL is derived as
    /// [`TrackerUrl::to_scrape`] describes). UDP scrapes take at most
    /// [`MAX_SCRAPE_HASHES`](crate::udp::MAX_SCRAPE_HASHES) hashes.
    pub async fn scrape(&self, url: &str, hashes: &[InfoHashV1]) -> Result<ScrapeResponse, Error> {
        let url = TrackerUrl::parse(url)?.to_scrape()?;
        match url.scheme() {
            Scheme::Http => {
                let body = self.http_get(&url, &url.scrape_target(hashes)).await?;
                parse_scrape_response(&body, &self.settings.limits)
            }
            Scheme::Udp => match self.udp(&url, Operation::Scrape(hashes.to_vec())).await? {
                Output::Scraped(r) => Ok(r),
                Output::Failed(e) => Err(e),
                Output::Announced(_) => Err(Error::InvalidState),
            },
        }
    }

    async fn resolve(url: &TrackerUrl) -> Result<Vec<SocketAddr>, Error> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((url.host(), url.port())).await?.collect();
        if addrs.is_empty() {
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no address for tracker host",
            )));
        }
        Ok(addrs)
    }

    /// Returns the body of a 2xx response; a non-2xx response with a bencoded `failure reason` is
    /// [`Error::TrackerFailure`], otherwise [`Error::HttpStatus`].
    async fn http_get(&self, url: &TrackerUrl, target: &str) -> Result<Vec<u8>, Error> {
        let deadline = Instant::now() + self.settings.http_timeout;
        let request = http1::get_request(url, target);
        let max_body = self.settings.limits.response_bytes_limit();
        let exchange = async {
            let mut last_err = None;
            let mut stream = None;
            for addr in Self::resolve(url).await? {
                match self.tcp_connect(addr).await {
                    Ok(s) => {
                        stream = Some(s);
                        break;
                    }
                    Err(e) => last_err = Some(e),
                }
            }
            let Some(mut stream) = stream else {
                return Err(last_err.map_or(Error::Timeout, Error::Io));
            };
            stream.write_all(&request).await?;
            let cap = max_body.saturating_add(http1::MAX_HEAD_LEN).saturating_add(64 * 1024);
            let mut buf = Vec::with_capacity(8 * 1024);
            let mut chunk = vec![0u8; 16 * 1024];
            loop {
                let n = stream.read(&mut chunk).await?;
                buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
                let eof = n == 0;
                if let Some(resp) = http1::parse_response(&buf, eof, max_body)? {
                    return success_body(&resp, &self.settings.limits).map(<[u8]>::to_vec);
                }
                if eof {
                    return Err(Error::MalformedHttp { offset: buf.len() });
                }
                if buf.len() > cap {
                    return Err(Error::TooLarge { limit: max_body });
                }
            }
        };
        tokio::time::timeout_at(deadline, exchange).await.map_err(|_| Error::Timeout)?
    }

    async fn tcp_connect(&self, addr: SocketAddr) -> std::io::Result<TcpStream> {
        let bind = if addr.is_ipv4() { self.settings.bind_v4 } else { self.settings.bind_v6 };
        if bind.ip().is_unspecified() && bind.port() == 0 {
            return TcpStream::connect(addr).await;
        }
        let socket =
            if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
        socket.bind(bind)?;
        socket.connect(addr).await
    }

    async fn udp(&self, url: &TrackerUrl, op: Operation) -> Result<Output, Error> {
        let addr = Self::resolve(url).await?.into_iter().next().ok_or(Error::InvalidUrl)?;
        let bind = if addr.is_ipv4() { self.settings.bind_v4 } else { self.settings.bind_v6 };
        let socket = UdpSocket::bind(bind).await?;
        socket.connect(addr).await?;
        let seed = getrandom::u64().map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
        let mut session = UdpSession::new(self.settings.udp, Family::of(&addr), seed);
        if let Some((id, at)) = self.cached_connection(addr) {
            session.set_connection_id(id, at);
        }
        session.start(std::time::Instant::now(), op)?;
        // Larger than any UDP payload, so a datagram is never silently cut.
        let mut buf = vec![0u8; 65_536];
        let output = loop {
            while let Some(pkt) = session.poll_transmit() {
                socket.send(&pkt).await?;
            }
            if let Some(out) = session.poll_event() {
                break out;
            }
            let Some(deadline) = session.poll_timeout() else { return Err(Error::InvalidState) };
            let deadline = Instant::from_std(deadline);
            match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
                Ok(Ok(n)) => {
                    // Bad or foreign datagrams are dropped; the session keeps waiting.
                    let _ =
                        session.handle_datagram(std::time::Instant::now(), buf.get(..n).unwrap_or_default());
                }
                // ICMP port unreachable and the like: keep waiting for the retransmission timer,
                // as a lost packet would.
                Ok(Err(_)) => tokio::time::sleep_until(deadline).await,
                Err(_) => session.handle_timeout(std::time::Instant::now()),
            }
        };
        if let Some(c) = session.connection_id()
            && let Ok(mut map) = self.connection_ids.lock()
        {
            if map.len() > 1024 {
                map.clear();
            }
            map.insert(addr, c);
        }
        Ok(output)
    }

    fn cached_connection(&self, addr: SocketAddr) -> Option<(u64, std::time::Instant)> {
        self.connection_ids.lock().ok().and_then(|m| m.get(&addr).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::udp::{Request, Response};
    use crate::{Event, PeerId};

    fn announce() -> Announce {
        let mut a = Announce::new(InfoHashV1::from_bytes([9; 20]), PeerId::from_bytes([8; 20]), 6881);
        a.event = Event::Started;
        a
    }

    #[tokio::test(flavor = "current_thread")]
    async fn http_announce_against_loopback_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut req = vec![0u8; 4096];
            let n = s.read(&mut req).await.unwrap();
            let req = String::from_utf8_lossy(&req[..n]).into_owned();
            let body = b"d8:intervali60e5:peers6:\x7f\x00\x00\x01\x1a\xe1e";
            let head = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n", body.len());
            s.write_all(head.as_bytes()).await.unwrap();
            s.write_all(body).await.unwrap();
            s.write_all(b"\r\n0\r\n\r\n").await.unwrap();
            req
        });
        let client = Client::new(ClientSettings::new().http_timeout(Duration::from_secs(10)));
        let r = client.announce(&format!("http://127.0.0.1:{port}/announce"), &announce()).await.unwrap();
        assert_eq!(r.interval, 60);
        assert_eq!(r.peers, vec!["127.0.0.1:6881".parse().unwrap()]);
        let req = server.await.unwrap();
        assert!(req.starts_with(&format!("GET /announce?info_hash={}&peer_id=", "%09".repeat(20))), "{req}");
        assert!(req.contains("&event=started"), "{req}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn http_status_and_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            // First connection: a 404. Second: never answers.
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n").await.unwrap();
            let (_s, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let patient = Client::new(ClientSettings::new().http_timeout(Duration::from_secs(10)));
        let impatient = Client::new(ClientSettings::new().http_timeout(Duration::from_millis(300)));
        let url = format!("http://127.0.0.1:{port}/announce");
        assert!(matches!(patient.announce(&url, &announce()).await, Err(Error::HttpStatus { status: 404 })));
        assert!(matches!(impatient.announce(&url, &announce()).await, Err(Error::Timeout)));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn udp_announce_with_a_lost_packet() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = server.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            let mut dropped = false;
            loop {
                let Ok((n, from)) = server.recv_from(&mut buf).await else { return };
                let resp = match Request::decode(&buf[..n]) {
                    Ok(Request::Connect { transaction_id }) if !dropped => {
                        dropped = true;
                        let _ = transaction_id;
                        continue;
                    }
                    Ok(Request::Connect { transaction_id }) => {
                        Response::Connect { transaction_id, connection_id: 99 }
                    }
                    Ok(Request::Announce(a)) if a.connection_id == 99 => Response::Announce {
                        transaction_id: a.transaction_id,
                        interval: 30,
                        leechers: 1,
                        seeders: 0,
                        peers: vec!["127.0.0.1:7000".parse().unwrap()],
                    },
                    Ok(r) => panic!("unexpected {r:?}"),
                    Err(e) => panic!("{e:?}"),
                };
                let mut out = Vec::new();
                resp.encode(&mut out);
                server.send_to(&out, from).await.unwrap();
            }
        });
        let settings = ClientSettings::new()
            .udp(UdpSettings::new().base_timeout(Duration::from_millis(100)))
            .bind("127.0.0.1:0".parse().unwrap(), "[::1]:0".parse().unwrap());
        let client = Client::new(settings);
        let r = client.announce(&format!("udp://127.0.0.1:{port}"), &announce()).await.unwrap();
        assert_eq!((r.interval, r.incomplete), (30, Some(1)));
        assert_eq!(r.peers, vec!["127.0.0.1:7000".parse().unwrap()]);
    }

    /// BEP 15: over IPv6 the announce response carries 18-byte peers.
    #[tokio::test(flavor = "current_thread")]
    async fn udp_announce_over_ipv6() {
        let Ok(server) = UdpSocket::bind("[::1]:0").await else {
            println!("SKIP udp_announce_over_ipv6: no IPv6 loopback");
            return;
        };
        let port = server.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            loop {
                let Ok((n, from)) = server.recv_from(&mut buf).await else { return };
                let resp = match Request::decode(&buf[..n]) {
                    Ok(Request::Connect { transaction_id }) => {
                        Response::Connect { transaction_id, connection_id: 5 }
                    }
                    Ok(Request::Announce(a)) => Response::Announce {
                        transaction_id: a.transaction_id,
                        interval: 30,
                        leechers: 0,
                        seeders: 2,
                        peers: vec!["[::1]:7000".parse().unwrap(), "[fe80::2]:7001".parse().unwrap()],
                    },
                    other => panic!("unexpected {other:?}"),
                };
                let mut out = Vec::new();
                resp.encode(&mut out);
                server.send_to(&out, from).await.unwrap();
            }
        });
        let settings = ClientSettings::new()
            .udp(UdpSettings::new().base_timeout(Duration::from_millis(500)).max_retransmits(2))
            .bind("127.0.0.1:0".parse().unwrap(), "[::1]:0".parse().unwrap());
        let r = Client::new(settings)
            .announce(&format!("udp://[::1]:{port}/announce"), &announce())
            .await
            .unwrap();
        assert_eq!(
            r.peers,
            vec!["[::1]:7000".parse().unwrap(), "[fe80::2]:7001".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(r.complete, Some(2));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn udp_times_out() {
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = silent.local_addr().unwrap().port();
        let settings = ClientSettings::new()
            .udp(UdpSettings::new().base_timeout(Duration::from_millis(20)).max_retransmits(2))
            .bind("127.0.0.1:0".parse().unwrap(), "[::1]:0".parse().unwrap());
        let client = Client::new(settings);
        let r = client.announce(&format!("udp://127.0.0.1:{port}"), &announce()).await;
        assert!(matches!(r, Err(Error::Timeout)), "{r:?}");
        drop(silent);
    }
}
