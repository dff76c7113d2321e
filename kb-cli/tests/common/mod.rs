//! Helpers shared by the tests that run `kb serve`.

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The port a `kb serve --listen 127.0.0.1:0` child listens on, read from its start-up
/// log line, and a thread that keeps draining its log (so the server never blocks on a
/// full pipe) and returns the lines when the server exits.
pub(crate) fn listening_port(child: &mut Child) -> (u16, JoinHandle<Vec<String>>) {
    let mut lines = BufReader::new(child.stderr.take().expect("stderr piped")).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let port = loop {
        assert!(
            Instant::now() < deadline,
            "kb serve never said where it listens"
        );
        let line = lines.next().expect("kb serve exited").unwrap();
        let listening = line.contains("kb serve listening");
        if let Some(rest) = line.split("127.0.0.1:").nth(1).filter(|_| listening) {
            break rest
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap();
        }
    };
    let drain = std::thread::spawn(move || lines.map_while(Result::ok).collect());
    (port, drain)
}
