//! Helpers shared by the integration tests: a minimal bridge-like server built only from the
//! codec and `server::tls::build_acceptor` ([`server`]), access to the real captures in
//! `../shared/fixtures` ([`fixtures`], [`shared_fixture`]) and a private Mosquitto broker
//! ([`Mosquitto`]).
//!
//! Each test binary uses a different subset, so unused helpers are expected here.
#![allow(dead_code)]

pub mod fixtures;
pub mod rig;
pub mod server;

use std::path::PathBuf;

/// Path of a file under `../shared/fixtures`, or `None` (after saying so) when the shared
/// folder is absent — unless `CYNC_REQUIRE_SHARED_FIXTURES=1`, which makes absence a failure.
pub fn shared_fixture(rel: &str) -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures")
        .join(rel);
    if path.exists() {
        return Some(path);
    }
    if std::env::var("CYNC_REQUIRE_SHARED_FIXTURES").as_deref() == Ok("1") {
        panic!("shared fixture {} is required but missing", path.display());
    }
    eprintln!("SKIPPED: shared fixture {} is absent", path.display());
    None
}

/// A private Mosquitto broker on a free loopback port, killed on drop.
pub struct Mosquitto {
    pub port: u16,
    child: Option<std::process::Child>,
    dir: tempfile::TempDir,
    /// `(user, password)` the broker requires; `None` allows anonymous clients.
    login: Option<(String, String)>,
}

fn mosquitto_binary() -> Option<PathBuf> {
    [
        "/usr/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

impl Mosquitto {
    /// Starts a broker, or returns `None` (after saying so) when mosquitto is not installed —
    /// unless `CYNC_REQUIRE_MOSQUITTO=1`, which makes its absence a failure.
    pub fn start() -> Option<Mosquitto> {
        Self::start_with(None)
    }

    /// Starts a broker that accepts only `user` with `password` (a `mosquitto_passwd` file)
    /// and refuses everyone else, or `None` as [`Mosquitto::start`].
    pub fn start_with_login(user: &str, password: &str) -> Option<Mosquitto> {
        Self::start_with(Some((user.to_owned(), password.to_owned())))
    }

    fn start_with(login: Option<(String, String)>) -> Option<Mosquitto> {
        let Some(_) = mosquitto_binary() else {
            if std::env::var("CYNC_REQUIRE_MOSQUITTO").as_deref() == Ok("1") {
                panic!("mosquitto is required but not installed");
            }
            eprintln!("SKIPPED: mosquitto is not installed (apt-get install mosquitto)");
            return None;
        };
        let port = free_port();
        let mut broker = Mosquitto {
            port,
            child: None,
            dir: tempfile::tempdir().expect("tempdir"),
            login,
        };
        broker.restart();
        Some(broker)
    }

    /// Stops the broker (as a crash would: no clean goodbye to clients).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// (Re)starts the broker on the same port, waiting until it accepts connections.
    pub fn restart(&mut self) {
        self.stop();
        let conf = self.dir.path().join("mosquitto.conf");
        let access = match &self.login {
            None => "allow_anonymous true\n".to_owned(),
            Some((user, password)) => {
                let file = self.dir.path().join("passwd");
                let made = std::process::Command::new("mosquitto_passwd")
                    .args(["-b", "-c"])
                    .arg(&file)
                    .args([user, password])
                    .status()
                    .expect("run mosquitto_passwd (package mosquitto)");
                assert!(made.success(), "mosquitto_passwd failed");
                format!("allow_anonymous false\npassword_file {}\n", file.display())
            }
        };
        std::fs::write(
            &conf,
            format!(
                "listener {} 127.0.0.1\n{access}persistence false\n",
                self.port
            ),
        )
        .expect("write mosquitto.conf");
        let child = std::process::Command::new(mosquitto_binary().expect("mosquitto"))
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("mosquitto did not start on port {}", self.port);
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port that was free a moment ago (bind :0, read it back, release it).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}
