//! Mail as the tests see it: a real SMTP server (Python aiosmtpd) that stores every message
//! it accepts as JSON, and a parser for the .eml files of the file transport — both through
//! Python's `email` package, so headers are decoded by a real MIME implementation.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const SERVER: &str = r#"
import email, json, os, sys, uuid
from email import policy
from aiosmtpd.controller import Controller

port, out = int(sys.argv[1]), sys.argv[2]

class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        # Addresses starting with "reject" are refused for good (550), like an unknown user.
        if address.startswith("reject"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=policy.default)
        body = msg.get_body(preferencelist=("plain",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "from": str(msg["from"]),
            "to": str(msg["to"]),
            "subject": str(msg["subject"]),
            "message_id": str(msg["message-id"]),
            "purpose": str(msg["x-crm-purpose"] or ""),
            "body": body.get_content() if body is not None else "",
        }
        name = uuid.uuid4().hex
        tmp = os.path.join(out, "." + name)
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(out, name + ".json"))
        return "250 OK"

controller = Controller(Handler(), hostname="127.0.0.1", port=port)
controller.start()
print("ready", flush=True)
sys.stdin.read()
controller.stop()
"#;

const PARSE: &str = r#"
import email, json, sys
from email import policy
with open(sys.argv[1], "rb") as f:
    msg = email.message_from_binary_file(f, policy=policy.default)
body = msg.get_body(preferencelist=("plain",))
print(json.dumps({
    "from": str(msg["from"]), "to": str(msg["to"]), "subject": str(msg["subject"]),
    "message_id": str(msg["message-id"]),
    "purpose": str(msg["x-crm-purpose"] or ""),
    "body": body.get_content() if body is not None else "",
}))
"#;

/// A running SMTP server; stopped when dropped.
pub struct SmtpServer {
    pub port: u16,
    dir: PathBuf,
    _child: Child,
}

impl SmtpServer {
    /// Starts aiosmtpd on a free port (fails the test when it cannot).
    pub async fn start() -> SmtpServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dir = std::env::temp_dir().join(format!("crm-smtp-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("smtp dir");
        let mut child = Command::new("python3")
            .args(["-c", SERVER, &port.to_string()])
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs (./test.sh installs aiosmtpd into .venv-test)");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("aiosmtpd starts within 20 s")
            .expect("read aiosmtpd output");
        assert_eq!(
            ready.as_deref(),
            Some("ready"),
            "aiosmtpd did not start (pip install aiosmtpd)"
        );
        SmtpServer {
            port,
            dir,
            _child: child,
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, but the account mail of sign-up and sender
    /// confirmation ([`is_account_mail`]).
    pub fn messages(&self) -> Vec<Value> {
        read_json_dir(&self.dir)
            .into_iter()
            .filter(|m| !is_account_mail(m))
            .collect()
    }

    /// Waits until at least `n` messages arrived (20 s at most), returns all.
    pub async fn wait_for(&self, n: usize) -> Vec<Value> {
        for _ in 0..200 {
            let got = self.messages();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("expected {n} messages, got {:#?}", self.messages());
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn read_json_dir(dir: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).expect("message file");
            out.push(serde_json::from_str(&text).expect("message json"));
        }
    }
    out
}

/// Whether a parsed message is account mail (the sign-up verification link, a sender
/// confirmation), which every sign-up sends and most tests are not about.
pub fn is_account_mail(m: &Value) -> bool {
    m["purpose"]
        .as_str()
        .is_some_and(|p| p.starts_with("account."))
}

/// The .eml files the file transport wrote for a tenant, parsed, but account mail.
pub fn eml_files(data_dir: &Path, tenant_slug: &str) -> Vec<Value> {
    all_eml_files(data_dir, tenant_slug)
        .into_iter()
        .filter(|m| !is_account_mail(m))
        .collect()
}

/// The account mail the file transport wrote for a tenant (sign-up verification, sender
/// confirmations), parsed.
pub fn account_mail(data_dir: &Path, tenant_slug: &str) -> Vec<Value> {
    all_eml_files(data_dir, tenant_slug)
        .into_iter()
        .filter(is_account_mail)
        .collect()
}

/// Every .eml file the file transport wrote for a tenant, parsed.
pub fn all_eml_files(data_dir: &Path, tenant_slug: &str) -> Vec<Value> {
    let dir = data_dir.join("mail").join(tenant_slug);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "eml") {
            let parsed = std::process::Command::new("python3")
                .args(["-c", PARSE])
                .arg(&path)
                .output()
                .expect("python3 parses mail");
            assert!(
                parsed.status.success(),
                "{}",
                String::from_utf8_lossy(&parsed.stderr)
            );
            out.push(serde_json::from_slice(&parsed.stdout).expect("parsed mail json"));
        }
    }
    out
}
