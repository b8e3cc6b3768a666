//! The target of the SSRF tests: a server of the test's own on 127.0.0.2. It is a loopback
//! address, so even a broken guard sends nothing off this machine, and it is outside the test
//! configuration's allow-list (127.0.0.1), so a working guard never reaches it. Every connection
//! it accepts is logged; the tests end by checking that the log is empty.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub struct Trap {
    addr: std::net::SocketAddr,
    /// The first line of every request that got through (or the peer, if it sent nothing).
    hits: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Trap {
    pub async fn spawn() -> Trap {
        let listener = TcpListener::bind("127.0.0.2:0")
            .await
            .expect("bind 127.0.0.2 (Linux routes all of 127/8 to loopback)");
        let addr = listener.local_addr().expect("bound");
        let hits = Arc::new(Mutex::new(Vec::new()));
        let log = hits.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, peer)) = listener.accept().await {
                let mut head = [0u8; 512];
                let n = stream.read(&mut head).await.unwrap_or(0);
                let line = String::from_utf8_lossy(&head[..n])
                    .lines()
                    .next()
                    .map_or_else(|| format!("connection from {peer}"), str::to_string);
                log.lock().expect("trap log").push(line);
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\ntrapped")
                    .await;
            }
        });
        Trap { addr, hits, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Fails the test if anything reached the trap.
    pub fn assert_untouched(&self) {
        let hits = self.hits.lock().expect("trap log");
        assert!(
            hits.is_empty(),
            "the SSRF guard let requests through: {hits:?}"
        );
    }
}

impl Drop for Trap {
    fn drop(&mut self) {
        self.task.abort();
    }
}
