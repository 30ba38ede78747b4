//! Ports and a TCP proxy that cuts: PostgreSQL or Redis made unreachable
//! for a while.

use std::net::TcpListener;
use std::time::Duration;

/// A free TCP port on 127.0.0.1 (free when asked; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind port 0")
        .local_addr()
        .expect("local addr")
        .port()
}

/// A TCP proxy to a real service that a test can cut and restore, to make
/// PostgreSQL or Redis unreachable for a while: when cut, every live
/// connection is closed and nothing listens (new connects are refused).
pub struct TcpProxy {
    pub port: u16,
    open: tokio::sync::watch::Sender<bool>,
}

impl TcpProxy {
    /// Starts forwarding 127.0.0.1:`port` (a free port) to `upstream`.
    pub async fn start(upstream: (String, u16)) -> TcpProxy {
        let port = free_port();
        let (open, mut rx) = tokio::sync::watch::channel(true);
        tokio::spawn(async move {
            loop {
                if !*rx.borrow() && rx.wait_for(|o| *o).await.is_err() {
                    return;
                }
                let Ok(listener) = tokio::net::TcpListener::bind(("127.0.0.1", port)).await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                loop {
                    tokio::select! {
                        accepted = listener.accept() => {
                            let Ok((mut client, _)) = accepted else { continue };
                            let upstream = upstream.clone();
                            let mut cut = rx.clone();
                            tokio::spawn(async move {
                                let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else { return };
                                tokio::select! {
                                    _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                                    _ = cut.wait_for(|o| !*o) => {}
                                }
                            });
                        }
                        changed = rx.changed() => {
                            if changed.is_err() { return; }
                            if !*rx.borrow() { break; } // cut: stop listening
                        }
                    }
                }
            }
        });
        TcpProxy { port, open }
    }

    /// Closes every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        self.open.send_replace(false);
    }

    /// Listens and forwards again.
    pub fn restore(&self) {
        self.open.send_replace(true);
    }
}
