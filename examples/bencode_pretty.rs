//! Pretty-prints any bencoded file: byte strings as text when they are UTF-8, else as hex.
//!
//! ```text
//! cargo run --example bencode_pretty -- some.torrent [--lenient] [--max-string 64]
//! ```
//! With no file it prints a small built-in sample. Long binary strings (a torrent's `pieces`)
//! are shortened to `--max-string` bytes with the full length shown.

use std::io::Write;

use anyhow::{Context, bail};
use piecework::bencode::{DecodeOptions, Dictionary, Kind, Node, Value};

/// A small torrent-shaped document for when no file is given.
fn sample() -> Vec<u8> {
    let mut info = Dictionary::new();
    info.insert("length", 1_048_576);
    info.insert("name", "sample.bin");
    info.insert("piece length", 262_144);
    info.insert("pieces", Value::from((0u8..20).map(|i| i.wrapping_mul(37)).collect::<Vec<u8>>()));
    let mut root = Dictionary::new();
    root.insert("announce", "http://tracker.invalid:6969/announce");
    root.insert("comment", "sample data");
    root.insert("info", info);
    Value::Dict(root).to_vec()
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(2);
    }
}

fn run() -> anyhow::Result<()> {
    let mut path = None;
    let mut options = DecodeOptions::new();
    let mut max_string = 64usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--lenient" => options = DecodeOptions::lenient(),
            "--max-string" => {
                max_string =
                    args.next().context("--max-string needs a number")?.parse().context("--max-string")?
            }
            "-h" | "--help" => {
                println!("usage: bencode_pretty [FILE] [--lenient] [--max-string N]");
                return Ok(());
            }
            _ if path.is_none() => path = Some(arg),
            _ => bail!("unexpected argument {arg:?}"),
        }
    }
    let data = match &path {
        Some(p) => std::fs::read(p).with_context(|| format!("reading {p}"))?,
        None => sample(),
    };
    let doc = match options.decode(&data) {
        Ok(doc) => doc,
        Err(e) => bail!("{}: {e}", path.as_deref().unwrap_or("sample")),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    print_node(&mut out, doc.root(), 0, max_string)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

fn print_node(out: &mut impl Write, node: Node<'_, '_>, indent: usize, max: usize) -> std::io::Result<()> {
    let pad = "  ".repeat(indent + 1);
    match node.kind() {
        Kind::Int => write!(out, "{}", node.as_int().unwrap_or_default()),
        Kind::Bytes => print_bytes(out, node.as_bytes().unwrap_or_default(), max),
        Kind::List => {
            let list = node.as_list().expect("kind is List");
            if list.is_empty() {
                return write!(out, "[]");
            }
            writeln!(out, "[")?;
            for item in list {
                write!(out, "{pad}")?;
                print_node(out, item, indent + 1, max)?;
                writeln!(out, ",")?;
            }
            write!(out, "{}]", "  ".repeat(indent))
        }
        Kind::Dict => {
            let dict = node.as_dict().expect("kind is Dict");
            if dict.is_empty() {
                return write!(out, "{{}}");
            }
            writeln!(out, "{{")?;
            for (key, value) in dict.iter() {
                write!(out, "{pad}")?;
                print_bytes(out, key, max)?;
                write!(out, ": ")?;
                print_node(out, value, indent + 1, max)?;
                writeln!(out, ",")?;
            }
            write!(out, "{}}}", "  ".repeat(indent))
        }
    }
}

fn print_bytes(out: &mut impl Write, bytes: &[u8], max: usize) -> std::io::Result<()> {
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') => write!(out, "{s:?}"),
        _ => {
            write!(out, "<hex ")?;
            for b in bytes.iter().take(max) {
                write!(out, "{b:02x}")?;
            }
            if bytes.len() > max {
                write!(out, "... ({} bytes)", bytes.len())?;
            }
            write!(out, ">")
        }
    }
}
