//! A real S3-compatible server for the API tests: moto's server mode (`python3 -m moto.server`)
//! on a free loopback port, started per test and killed on drop — never a mock. Ported from
//! `core/tests/files.rs`.

use crm_core::files::{S3Config, S3Store};
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nobody listens on right now: bind port 0, note it, release it.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("binding 127.0.0.1:0")
        .port()
}

/// moto's S3 server; killed (and its log removed) on drop.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    log: PathBuf,
}

impl Moto {
    const STARTUP: Duration = Duration::from_secs(30);

    const HINT: &'static str = "install it with: python3 -m pip install 'moto[server]' \
                                (./test.sh does this in the project virtualenv .venv-test)";

    /// Starts the server and waits until it answers HTTP; panics (fails the test) with the
    /// server's output when it cannot.
    pub async fn start() -> Self {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("crm-api-moto-{}.log", uuid::Uuid::new_v4()));
        let out = fs::File::create(&log).expect("creating the moto log file");
        let err = out.try_clone().expect("cloning the moto log handle");
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run python3 for the S3 test server: {e}; {}",
                    Self::HINT
                )
            });
        let mut moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
        };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!(
                    "the S3 test server (python3 -m moto.server) exited with {status}; {}\n{}",
                    Self::HINT,
                    moto.output()
                );
            }
            if tokio::task::spawn_blocking(move || answers_http(addr))
                .await
                .unwrap_or(false)
            {
                return moto;
            }
            if started.elapsed() > Self::STARTUP {
                panic!(
                    "the S3 test server (python3 -m moto.server) did not answer on {addr} \
                     within {:?}; {}\n{}",
                    Self::STARTUP,
                    Self::HINT,
                    moto.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn output(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Settings for `bucket` on this server (path-style, fixed test credentials).
    pub fn config(&self, bucket: &str) -> S3Config {
        S3Config {
            endpoint: Some(self.endpoint.clone()),
            region: "us-east-1".into(),
            bucket: bucket.into(),
            access_key_id: "test-access-key".into(),
            secret_access_key: "test-secret-key".into(),
            force_path_style: true,
            prefix: None,
        }
    }

    /// Creates `bucket` and returns a store on it, whose SDK client the test can inspect.
    pub async fn bucket(&self, bucket: &str) -> S3Store {
        let store = S3Store::new(&self.config(bucket)).expect("S3 settings are complete");
        store
            .client()
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .expect("creating the test bucket");
        store
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_file(&self.log);
    }
}

/// Whether something at `addr` answers a plain HTTP request with a status line.
fn answers_http(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    let mut head = [0u8; 8];
    stream.write_all(request).is_ok()
        && stream.read_exact(&mut head).is_ok()
        && head.starts_with(b"HTTP/1.")
}

/// Every object name in the store's bucket.
pub async fn object_names(store: &S3Store) -> Vec<String> {
    let listed = store
        .client()
        .list_objects_v2()
        .bucket(store.bucket())
        .send()
        .await
        .expect("listing the test bucket");
    let mut names: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// The bytes of one object, read with the SDK (not through the server under test).
pub async fn object_bytes(store: &S3Store, name: &str) -> Vec<u8> {
    let object = store
        .client()
        .get_object()
        .bucket(store.bucket())
        .key(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("object {name} readable: {e:?}"));
    object
        .body
        .collect()
        .await
        .expect("object body")
        .into_bytes()
        .to_vec()
}
