//! The attachment stores against real backends: a temporary directory, and a real
//! S3-compatible server (moto's server mode, started per test) — never a mock.

// Tests may unwrap: a panic is how they fail.
#![allow(clippy::unwrap_used)]

use crm_core::files::{open, FileStore, FileStoreConfig, LocalStore, S3Config, S3Store, StoredKey};
use crm_core::Error;
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The behaviour every backend must show; the same body runs against each of them.
async fn exercise(store: &dyn FileStore) {
    let tenant = Uuid::new_v4();
    let key = StoredKey::generate(tenant);

    let err = store.get(&key).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotFound {
                code: "file.not_found",
                ..
            }
        ),
        "{}: get before put: {err:?}",
        store.kind()
    );

    let first = b"%PDF-1.7\n first version".to_vec();
    store
        .put(&key, "application/pdf", first.clone())
        .await
        .unwrap();
    assert_eq!(store.get(&key).await.unwrap(), first);

    // Overwrite with different content and length: no trace of the first version remains.
    let second = vec![0xAB; 300_000];
    store
        .put(&key, "application/pdf", second.clone())
        .await
        .unwrap();
    assert_eq!(store.get(&key).await.unwrap(), second);

    // Another tenant's object with the same id space stays apart.
    let other = StoredKey::generate(Uuid::new_v4());
    store
        .put(&other, "text/plain", b"other".to_vec())
        .await
        .unwrap();
    assert_eq!(store.get(&key).await.unwrap(), second);

    let empty = StoredKey::generate(tenant);
    store.put(&empty, "text/plain", Vec::new()).await.unwrap();
    assert_eq!(store.get(&empty).await.unwrap(), Vec::<u8>::new());

    store.delete(&key).await.unwrap();
    let err = store.get(&key).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotFound {
                code: "file.not_found",
                ..
            }
        ),
        "{}: get after delete: {err:?}",
        store.kind()
    );
    store
        .delete(&key)
        .await
        .expect("deleting an absent object succeeds");
    assert_eq!(store.get(&other).await.unwrap(), b"other");

    store.delete(&other).await.unwrap();
    store.delete(&empty).await.unwrap();
    exercise_files(store).await;
}

/// Streaming a file in and out (backup archives): same bytes, absent objects are not found.
async fn exercise_files(store: &dyn FileStore) {
    let dir = std::env::temp_dir().join(format!("crm-files-stream-{}", Uuid::new_v4().simple()));
    fs::create_dir_all(&dir).unwrap();
    let source = dir.join("in.bin");
    // Larger than one read buffer of either backend, not a multiple of any.
    let bytes: Vec<u8> = (0..3_000_001u32).map(|i| (i % 251) as u8).collect();
    fs::write(&source, &bytes).unwrap();
    let key = StoredKey::generate(Uuid::new_v4());
    store
        .put_file(&key, "application/zstd", &source)
        .await
        .unwrap();
    assert_eq!(store.get(&key).await.unwrap(), bytes, "{}", store.kind());
    let copy = dir.join("out.bin");
    let size = store.get_to_file(&key, &copy).await.unwrap();
    assert_eq!(size, bytes.len() as u64);
    assert_eq!(fs::read(&copy).unwrap(), bytes, "{}", store.kind());
    store.delete(&key).await.unwrap();
    let err = store
        .get_to_file(&key, &dir.join("absent.bin"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "file.not_found", "{}: {err:?}", store.kind());
    fs::remove_dir_all(&dir).unwrap();
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!("crm-files-test-{}", Uuid::new_v4()));
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn local_store_puts_gets_overwrites_and_deletes() {
    let tmp = TempDir::new();
    let store = LocalStore::new(tmp.0.join("files")).unwrap();
    exercise(&store).await;
}

#[tokio::test]
async fn local_store_writes_private_files_where_the_key_says_and_leaves_no_temp_files() {
    let tmp = TempDir::new();
    let store = LocalStore::new(tmp.0.join("files")).unwrap();
    let key = StoredKey::generate(Uuid::new_v4());
    store
        .put(&key, "text/plain", b"hello".to_vec())
        .await
        .unwrap();
    store
        .put(&key, "text/plain", b"hello again".to_vec())
        .await
        .unwrap();

    let path = store.dir().join(key.as_str());
    assert_eq!(store.path_of(&key), path);
    assert_eq!(fs::read(&path).unwrap(), b"hello again");
    let siblings: Vec<_> = fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(siblings, vec![path.file_name().unwrap().to_owned()]);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(store.dir()), 0o700);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(mode(&path), 0o600);
    }
}

#[tokio::test]
async fn local_store_readers_never_see_a_partial_overwrite() {
    let tmp = TempDir::new();
    let store = Arc::new(LocalStore::new(tmp.0.join("files")).unwrap());
    let key = StoredKey::generate(Uuid::new_v4());
    let (a, b) = (vec![b'a'; 2 << 20], vec![b'b'; 1 << 20]);
    store.put(&key, "text/plain", a.clone()).await.unwrap();

    let writer = {
        let (store, key, a, b) = (store.clone(), key.clone(), a.clone(), b.clone());
        tokio::spawn(async move {
            for i in 0..20 {
                let next = if i % 2 == 0 { b.clone() } else { a.clone() };
                store.put(&key, "text/plain", next).await.unwrap();
            }
        })
    };
    while !writer.is_finished() {
        let read = store.get(&key).await.unwrap();
        assert!(
            read == a || read == b,
            "read a torn file of {} bytes",
            read.len()
        );
    }
    writer.await.unwrap();
}

#[tokio::test]
async fn open_defaults_to_files_under_the_data_dir() {
    let tmp = TempDir::new();
    let store = open(&FileStoreConfig::default(), &tmp.0).await.unwrap();
    assert_eq!(store.kind(), "local");
    assert!(tmp.0.join("files").is_dir());

    let dir = tmp.0.join("elsewhere");
    let config = FileStoreConfig::Local {
        dir: Some(dir.clone()),
    };
    let store = open(&config, &tmp.0).await.unwrap();
    let key = StoredKey::generate(Uuid::new_v4());
    store.put(&key, "text/plain", b"x".to_vec()).await.unwrap();
    assert!(dir.join(key.as_str()).is_file());
}

/// A port nobody listens on right now: bind port 0, note it, release it.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("binding 127.0.0.1:0")
        .port()
}

/// moto's S3-compatible server on a free loopback port; killed on drop.
struct Moto {
    child: Child,
    endpoint: String,
    log: PathBuf,
}

impl Moto {
    const STARTUP: Duration = Duration::from_secs(30);

    /// Starts `python3 -m moto.server` and waits until it answers HTTP; panics (fails the
    /// test) with the server's output when it cannot.
    fn start() -> Self {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("crm-moto-{}.log", Uuid::new_v4()));
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
            if answers_http(addr) {
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
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    const HINT: &'static str = "install it with: python3 -m pip install 'moto[server]' \
                                (./test.sh does this in the project virtualenv .venv-test)";

    fn output(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn config(&self, bucket: &str) -> S3Config {
        s3_config(&self.endpoint, bucket)
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

fn s3_config(endpoint: &str, bucket: &str) -> S3Config {
    S3Config {
        endpoint: Some(endpoint.to_owned()),
        region: "us-east-1".into(),
        bucket: bucket.into(),
        access_key_id: "test-access-key".into(),
        secret_access_key: "test-secret-key".into(),
        force_path_style: true,
        prefix: None,
    }
}

#[tokio::test]
async fn s3_store_against_a_real_s3_server() {
    let moto = Moto::start();
    let store = S3Store::new(&moto.config("crm")).unwrap();
    store
        .client()
        .create_bucket()
        .bucket("crm")
        .send()
        .await
        .expect("creating the test bucket");

    // The same behaviour as the local directory.
    exercise(&store).await;

    // Built through `open`, with a prefix: objects land under it.
    let config = FileStoreConfig::S3(S3Config {
        prefix: Some("/crm/attachments/".into()),
        ..moto.config("crm")
    });
    let prefixed = open(&config, std::path::Path::new("/nonexistent"))
        .await
        .unwrap();
    assert_eq!(prefixed.kind(), "s3");
    let key = StoredKey::generate(Uuid::new_v4());
    prefixed
        .put(&key, "image/png", b"\x89PNG\r\n\x1a\n".to_vec())
        .await
        .unwrap();
    let object = store
        .client()
        .get_object()
        .bucket("crm")
        .key(format!("crm/attachments/{key}"))
        .send()
        .await
        .expect("the object is stored under the prefix");
    assert_eq!(object.content_type(), Some("image/png"));
    let err = store.get(&key).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert_eq!(prefixed.get(&key).await.unwrap(), b"\x89PNG\r\n\x1a\n");

    // A missing bucket is a configuration problem, not a missing file.
    let lost = S3Store::new(&moto.config("no-such-bucket")).unwrap();
    let err = lost.get(&key).await.unwrap_err();
    assert!(!matches!(err, Error::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("NoSuchBucket"), "{err}");
}

#[tokio::test]
async fn s3_store_on_a_closed_port_is_unavailable() {
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let store = S3Store::new(&s3_config(&endpoint, "crm")).unwrap();
    let key = StoredKey::generate(Uuid::new_v4());
    let errors = [
        store.get(&key).await.unwrap_err(),
        store
            .put(&key, "text/plain", b"x".to_vec())
            .await
            .unwrap_err(),
        store.delete(&key).await.unwrap_err(),
    ];
    for err in errors {
        assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
        let message = err.to_string();
        assert!(message.contains(&endpoint), "{message}");
        assert!(message.contains("bucket 'crm'"), "{message}");
    }
}
