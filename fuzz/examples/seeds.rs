//! Writes the seed inputs of every fuzz target into `DIR/<target>/`
//! (default `corpus`, relative to the current directory):
//! `cargo run --manifest-path fuzz/Cargo.toml --example seeds -- fuzz/corpus`.
//!
//! The seeds are real traffic: upgrade heads and every refusal, masked text
//! frames with requests, pings, pongs, close frames, fragments, oversize,
//! unmasked and malformed frames, floods, and session scripts that reach
//! each timer and each way of closing. Fuzzing then minimizes the corpus
//! (`cargo fuzz cmin`); these only give it a head start.

use std::fs;
use std::path::Path;

use tickcast_fuzz::{
    Action, FramesInput, REQUESTS, client_frame, encode_core, heads, masked, text, upgrade_head,
};

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "corpus".into());
    let dir = Path::new(&dir);
    write(dir, "http_route", http_route());
    write(
        dir,
        "parse_request",
        REQUESTS.iter().map(|r| r.as_bytes().to_vec()).collect(),
    );
    write(dir, "session_frames", session_frames());
    write(dir, "session_core", session_core());
}

fn write(dir: &Path, target: &str, seeds: Vec<Vec<u8>>) {
    let d = dir.join(target);
    fs::create_dir_all(&d).unwrap();
    for (i, s) in seeds.iter().enumerate() {
        fs::write(d.join(format!("seed-{i:03}")), s).unwrap();
    }
    println!("{target}: {} seeds in {}", seeds.len(), d.display());
}

fn http_route() -> Vec<Vec<u8>> {
    let mut out = heads().to_vec();
    let mut early = upgrade_head("/ws", "");
    early.extend(text(r#"{"op":"ping","id":1}"#));
    out.push(early);
    let many: String = (0..49).map(|i| format!("X-{i}: y\r\n")).collect();
    out.push(upgrade_head("/ws", &many));
    out.push(upgrade_head(
        "/ws",
        &format!("X-Pad: {}\r\n", "p".repeat(8000)),
    ));
    out.push(format!("GET /ws HTTP/1.1\r\nX: {}", "a".repeat(8200)).into_bytes());
    out.push(b"GET /ws\n\n".to_vec());
    out.push(b"GET /ws HTTP/1.1\nUpgrade: websocket\nConnection: upgrade\nSec-WebSocket-Version: 13\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\n\n".to_vec());
    out
}

fn session_frames() -> Vec<Vec<u8>> {
    let all_requests: Vec<u8> = REQUESTS.iter().flat_map(|r| text(r)).collect();
    let ping = masked(0x9, b"hb");
    let pong = masked(0xA, b"");
    let close = |code: u16, reason: &str| {
        let mut p = code.to_be_bytes().to_vec();
        p.extend_from_slice(reason.as_bytes());
        masked(0x8, &p)
    };
    let frag = |b0: u8, payload: &[u8]| client_frame(b0, Some([9, 8, 7, 6]), payload);
    let cat = |parts: &[&[u8]]| parts.concat();
    let req = text(r#"{"op":"subscribe","id":1,"symbols":["AAPL"]}"#);
    let flood: Vec<u8> = (0..12)
        .flat_map(|i| text(&format!(r#"{{"op":"ping","id":{i}}}"#)))
        .collect();
    let streams: Vec<(Vec<u8>, [u8; 2])> = vec![
        (
            all_requests.clone(),
            FramesInput::settings(2, 7, false, 3, false, 0),
        ),
        (all_requests, FramesInput::settings(2, 2, true, 0, true, 0)),
        (
            cat(&[&ping, &req, &pong]),
            FramesInput::settings(2, 0, false, 1, true, 0),
        ),
        (
            cat(&[&ping, &close(1000, "bye"), &req]),
            FramesInput::settings(2, 5, false, 2, false, 0),
        ),
        (
            close(1001, ""),
            FramesInput::settings(2, 7, true, 3, false, 0),
        ),
        (
            masked(0x8, b""),
            FramesInput::settings(2, 7, false, 3, false, 0),
        ),
        (
            masked(0x8, b"\x03"),
            FramesInput::settings(2, 7, false, 3, false, 0),
        ),
        (
            close(999, "bad code"),
            FramesInput::settings(2, 7, false, 3, false, 0),
        ),
        (
            close(1000, "\u{e9}t\u{e9}"),
            FramesInput::settings(2, 1, false, 3, false, 0),
        ),
        (
            masked(0x8, b"\x03\xe8\xff\xfe"),
            FramesInput::settings(2, 7, false, 3, false, 0),
        ),
        (
            cat(&[&frag(0x01, br#"{"op":"#), &ping, &frag(0x80, br#""ping"}"#)]),
            FramesInput::settings(2, 3, false, 1, false, 0),
        ),
        (
            frag(0x80, b"orphan continuation"),
            FramesInput::settings(2, 7, false, 3, false, 0),
        ),
        (
            cat(&[&frag(0x01, b"{"), &frag(0x01, b"}")]),
            FramesInput::settings(2, 7, false, 3, false, 0),
        ),
        (
            masked(0x2, b"\x01\x02"),
            FramesInput::settings(2, 7, false, 3, false, 0),
        ),
        (
            text(&"x".repeat(200)),
            FramesInput::settings(0, 7, false, 3, false, 0),
        ),
        (
            cat(&[&frag(0x01, &[b'y'; 100]), &frag(0x80, &[b'z'; 100])]),
            FramesInput::settings(0, 4, false, 3, false, 0),
        ),
        (
            [&[0x81u8, 0xff][..], &u64::MAX.to_be_bytes(), &[1, 2, 3, 4]].concat(),
            FramesInput::settings(2, 7, false, 3, false, 0),
        ),
        (
            client_frame(0x81, None, b"{\"op\":\"ping\"}"),
            FramesInput::settings(2, 7, false, 3, false, 0),
        ),
        (
            masked(0x1, b"\xff\xfe"),
            FramesInput::settings(2, 7, false, 3, false, 0),
        ),
        (
            cat(&[&frag(0x01, b"\xc3"), &frag(0x80, b"\xa9")]),
            FramesInput::settings(2, 0, false, 3, false, 0),
        ),
        (
            frag(0xC1, b"{}"),
            FramesInput::settings(2, 7, false, 3, false, 0),
        ),
        (
            masked(0x3, b""),
            FramesInput::settings(2, 7, false, 3, false, 0),
        ),
        (
            masked(0xB, b""),
            FramesInput::settings(2, 7, false, 3, false, 0),
        ),
        (
            masked(0x9, &[b'p'; 126]),
            FramesInput::settings(2, 7, false, 3, false, 0),
        ),
        (
            frag(0x09, b"fragmented ping"),
            FramesInput::settings(2, 7, false, 3, false, 0),
        ),
        (
            flood.clone(),
            FramesInput::settings(2, 7, false, 2, false, 2),
        ),
        (flood, FramesInput::settings(2, 3, true, 0, true, 1)),
        (
            req[..req.len() - 3].to_vec(),
            FramesInput::settings(2, 7, true, 3, false, 0),
        ),
        (
            text(&"[".repeat(1000)),
            FramesInput::settings(2, 6, false, 3, false, 0),
        ),
    ];
    streams
        .into_iter()
        .map(|(stream, settings)| [&settings[..], &stream].concat())
        .collect()
}

fn session_core() -> Vec<Vec<u8>> {
    use Action::*;
    // Config bytes (see CoreConfig): h0 = size | (burst-1) << 2;
    // h1 = (rate-1) | heartbeat << 4 | lag << 6; h2 = handshake | linger << 2.
    let default = [3 | 7 << 2, 15 | 1 << 4 | 1 << 6, 2 | 1 << 2, 0];
    let fast = [0, 1 << 4, 1, 0];
    let open = |id| vec![Head { i: 0, split: false }, RouteOpen { id }];
    let pong = Frame {
        b0: 0x8A,
        masked: true,
        cut: false,
        len: 0,
        fill: vec![],
    };
    let scripts: Vec<([u8; 4], Vec<Action>)> = vec![
        (
            default,
            [
                open(0),
                vec![
                    Request(0),
                    Request(3),
                    Read(255),
                    Heartbeats(2),
                    Due { act: true },
                    pong.clone(),
                    Read(1),
                    Read(255),
                    Heartbeats(7),
                    Due { act: true },
                    Drained,
                    PeerClosed,
                ],
            ]
            .concat(),
        ),
        (
            fast,
            vec![
                Head { i: 0, split: true },
                Due { act: false },
                Advance(5),
                Due { act: true },
            ],
        ),
        (
            default,
            vec![
                Head { i: 4, split: false },
                RouteOpen { id: 0 },
                Drained,
                Eof,
            ],
        ),
        (
            default,
            vec![
                Head { i: 1, split: false },
                RouteOpen { id: 0x80 },
                PeerClosed,
                Drained,
            ],
        ),
        (
            default,
            [
                open(3),
                vec![
                    Advance(1500),
                    Due { act: true },
                    Advance(3000),
                    Due { act: true },
                ],
            ]
            .concat(),
        ),
        (
            default,
            [
                open(1),
                vec![
                    Heartbeats(2),
                    Due { act: true },
                    Pinged,
                    Advance(1100),
                    Due { act: false },
                    pong,
                    Read(255),
                    Due { act: true },
                ],
            ]
            .concat(),
        ),
        (
            [0, 0, 2 | 1 << 2, 0],
            [
                open(0),
                (0..12).map(|_| Request(4)).collect(),
                vec![Read(255), Read(255)],
            ]
            .concat(),
        ),
        (
            default,
            [
                open(0),
                vec![
                    Frame {
                        b0: 0x88,
                        masked: true,
                        cut: false,
                        len: 2,
                        fill: vec![0x03, 0xe8],
                    },
                    Request(4),
                    Read(255),
                    Request(4),
                    Read(255),
                ],
            ]
            .concat(),
        ),
        (
            default,
            [
                open(0),
                vec![
                    Raw {
                        limited: false,
                        bytes: b"\x16\x03\x01 not a frame".to_vec(),
                    },
                    Read(3),
                ],
            ]
            .concat(),
        ),
        (
            default,
            [open(0), vec![Request(1), Eof, Read(0), Read(1), Read(255)]].concat(),
        ),
        (
            default,
            vec![
                Head { i: 0, split: false },
                Request(4),
                Frame {
                    b0: 0x89,
                    masked: true,
                    cut: false,
                    len: 4,
                    fill: b"ping".to_vec(),
                },
                RouteOpen { id: 2 },
                Read(1),
                Read(1),
                Read(1),
            ],
        ),
        (
            [0, 0, 0, 0],
            [
                open(0),
                vec![
                    Frame {
                        b0: 0x81,
                        masked: true,
                        cut: false,
                        len: 300,
                        fill: vec![],
                    },
                    Read(255),
                ],
            ]
            .concat(),
        ),
        (
            default,
            [
                open(0),
                vec![
                    Frame {
                        b0: 0x01,
                        masked: true,
                        cut: false,
                        len: 5,
                        fill: br#"{"op""#.to_vec(),
                    },
                    Read(255),
                    Frame {
                        b0: 0x80,
                        masked: true,
                        cut: true,
                        len: 9,
                        fill: br#":"ping"}"#.to_vec(),
                    },
                    Read(255),
                    StartClosing(100),
                    Advance(100),
                    Due { act: true },
                ],
            ]
            .concat(),
        ),
        (
            default,
            [
                vec![Head {
                    i: 19,
                    split: false,
                }],
                (0..34)
                    .map(|_| Raw {
                        limited: true,
                        bytes: vec![b'a'; 255],
                    })
                    .collect(),
                vec![RouteOpen { id: 0 }],
            ]
            .concat(),
        ),
    ];
    scripts
        .into_iter()
        .map(|(config, actions)| encode_core(config, &actions))
        .collect()
}
