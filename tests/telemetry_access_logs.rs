//! The admin token never reaches a log line, whatever a request does. Alone in its binary: it
//! installs a global log subscriber, so events from every thread (the token is created on a
//! blocking thread) are captured, which a thread-scoped subscriber in a shared test binary cannot
//! promise while other tests register the same log call sites.

mod admin_world;

use std::sync::{Arc, Mutex};

use admin_world::{helper_post, json, raw_post, start};

#[test]
fn nothing_logged_anywhere_contains_the_token() {
    let logs = Arc::new(Mutex::new(Vec::<u8>::new()));
    let writer = {
        let logs = Arc::clone(&logs);
        move || LogWriter(Arc::clone(&logs))
    };
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(writer)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let token = {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let admin = start(Vec::new()).await;
            assert_eq!(helper_post(&admin, json()).await.status, 200);
            let bearer = format!("Authorization: Bearer {}x", admin.token());
            let host = format!("Host: {}", admin.addr);
            assert_eq!(raw_post(admin.addr, vec![host, bearer], "{}").await.0, 401);
            admin.token()
        })
    };
    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("admin token created"),
        "the capture works: {logs}"
    );
    assert!(!logs.contains(&token), "token in logs:\n{logs}");
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
