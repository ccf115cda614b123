//! `piecework inspect`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use piecework_metainfo::{Magnet, Metainfo, to_hex};
use serde_json::{Value, json};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// A .torrent file or a magnet link.
    target: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(a: Args) -> anyhow::Result<ExitCode> {
    let v = if a.target.starts_with("magnet:") {
        let m: Magnet = a.target.parse().context("invalid magnet link")?;
        magnet_json(&m)
    } else {
        let path = PathBuf::from(&a.target);
        let bytes = super::read_torrent(&path)?;
        torrent_json(&super::parse(&path, &bytes)?)
    };
    if a.json {
        out!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_text(&v);
    }
    Ok(ExitCode::SUCCESS)
}

fn torrent_json(m: &Metainfo<'_>) -> Value {
    let files: Vec<Value> = m
        .files()
        .iter()
        .map(|f| {
            json!({
                "path": f.path().to_string(),
                "length": f.length(),
                "pad": f.is_pad(),
                "pieces_root": f.pieces_root().map(|r| to_hex(r)),
                "attributes": f.attributes().to_attr_string(),
                "symlink_target": f.symlink_target().map(|t| t.to_string()),
            })
        })
        .collect();
    json!({
        "name": m.name(),
        "version": format!("{:?}", m.version()).to_lowercase(),
        "info_hash_v1": m.info_hashes().v1().map(|h| h.to_hex()),
        "info_hash_v2": m.info_hashes().v2().map(|h| h.to_hex()),
        "piece_length": m.piece_length(),
        "total_length": m.total_length(),
        "piece_count": m.piece_count(),
        "private": m.is_private(),
        "trackers": m.trackers(),
        "web_seeds": m.web_seeds(),
        "creation_date": m.creation_date(),
        "comment": m.comment(),
        "created_by": m.created_by(),
        "files": files,
    })
}

fn magnet_json(m: &Magnet) -> Value {
    json!({
        "name": m.name(),
        "info_hash_v1": m.info_hashes().v1().map(|h| h.to_hex()),
        "info_hash_v2": m.info_hashes().v2().map(|h| h.to_hex()),
        "piece_length": null,
        "total_length": m.exact_length(),
        "piece_count": null,
        "private": false,
        "trackers": m.trackers().iter().map(|t| vec![t.clone()]).collect::<Vec<_>>(),
        "web_seeds": m.web_seeds(),
        "peers": m.peers(),
        "files": [],
    })
}

fn print_text(v: &Value) {
    let s = |k: &str| match &v[k] {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    for k in [
        "name",
        "version",
        "info_hash_v1",
        "info_hash_v2",
        "piece_length",
        "total_length",
        "piece_count",
        "private",
    ] {
        if !v[k].is_null() || k.starts_with("info_hash") {
            out!("{:<14} {}", format!("{k}:"), s(k));
        }
    }
    if let Some(tiers) = v["trackers"].as_array() {
        for (i, t) in tiers.iter().enumerate() {
            out!(
                "tracker tier {i}: {}",
                t.as_array()
                    .map(|u| u.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "))
                    .unwrap_or_default()
            );
        }
    }
    if let Some(ws) = v["web_seeds"].as_array() {
        for w in ws.iter().filter_map(Value::as_str) {
            out!("web seed:      {w}");
        }
    }
    if let Some(files) = v["files"].as_array() {
        out!("files:         {}", files.len());
        for f in files {
            let pad = if f["pad"].as_bool() == Some(true) { " (pad)" } else { "" };
            out!("  {:>14}  {}{pad}", f["length"].as_u64().unwrap_or(0), f["path"].as_str().unwrap_or(""));
        }
    }
}
