//! A private Mosquitto for the bench.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A private Mosquitto on a free loopback port, killed on drop (as `tests/common`'s, plus
/// `set_tcp_nodelay`: without it the broker's small writes wait for Nagle).
pub struct Mosquitto {
    pub port: u16,
    pub child: Child,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    pub fn start() -> Option<Mosquitto> {
        let binary = [
            "/usr/sbin/mosquitto",
            "/usr/bin/mosquitto",
            "/usr/local/sbin/mosquitto",
        ]
        .iter()
        .map(Path::new)
        .find(|p| p.exists())?;
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 set_tcp_nodelay true\n"
            ),
        )
        .expect("write mosquitto.conf");
        let child = Command::new(binary)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        let broker = Mosquitto {
            port,
            child,
            _dir: dir,
        };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(broker);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("mosquitto did not start on port {port}");
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}
