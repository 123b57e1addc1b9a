//! A real Garage (S3-compatible object store) on loopback for the archive's tests: one
//! node, or a cluster of three with replication factor 3. `scripts/test` installs the
//! `garage` binary (`cargo install garage --locked --version 2.5.0`) once.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const KEY_ID: &str = "GK0123456789abcdef01234567";
pub const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
pub const BUCKET: &str = "court-archive";

fn garage_bin() -> String {
    if let Ok(p) = std::env::var("GARAGE_BIN") {
        return p;
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let cargo = format!("{home}/.cargo/bin/garage");
    if Path::new(&cargo).is_file() {
        cargo
    } else {
        "garage".into()
    }
}

/// One Garage node.
pub struct Node {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub s3_port: u16,
    pub rpc_port: u16,
    child: Option<Child>,
}

impl Node {
    fn new(dir: &Path, secret: &str, replication: u8) -> Node {
        std::fs::create_dir_all(dir).unwrap();
        let (s3_port, rpc_port, admin_port) =
            (super::free_port(), super::free_port(), super::free_port());
        let config = dir.join("garage.toml");
        std::fs::write(
            &config,
            format!(
                "metadata_dir = \"{d}/meta\"\ndata_dir = \"{d}/data\"\ndb_engine = \"sqlite\"\n\
                 replication_factor = {replication}\n\
                 rpc_bind_addr = \"127.0.0.1:{rpc_port}\"\nrpc_public_addr = \"127.0.0.1:{rpc_port}\"\n\
                 rpc_secret = \"{secret}\"\n\
                 [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:{s3_port}\"\n\
                 root_domain = \".s3.garage.localhost\"\n\
                 [admin]\napi_bind_addr = \"127.0.0.1:{admin_port}\"\n",
                d = dir.display()
            ),
        )
        .unwrap();
        let mut n = Node {
            dir: dir.to_path_buf(),
            config,
            s3_port,
            rpc_port,
            child: None,
        };
        n.start();
        n
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none());
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.dir.join("garage.log"))
            .unwrap();
        let child = Command::new(garage_bin())
            .args(["-c", self.config.to_str().unwrap(), "server"])
            .env("RUST_LOG", "garage=warn")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("garage is installed (scripts/test installs it)");
        self.child = Some(child);
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.s3_port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "garage did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the node (SIGTERM, then waits).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(garage_bin())
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "garage {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    fn node_id(&self) -> String {
        let t0 = Instant::now();
        loop {
            let out = Command::new(garage_bin())
                .arg("-c")
                .arg(&self.config)
                .args(["node", "id", "-q"])
                .output()
                .unwrap();
            let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && !s.is_empty() {
                return s;
            }
            assert!(t0.elapsed() < Duration::from_secs(30), "garage node id");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Garage cluster (1 or 3 nodes) with the bucket and the box's key made.
pub struct Garage {
    pub nodes: Vec<Node>,
}

impl Garage {
    /// One node on loopback, bucket `court-archive`, key [`KEY_ID`].
    pub fn single(dir: &Path) -> Garage {
        Self::cluster(dir, 1)
    }

    /// `n` nodes on loopback (replication factor `n`), each in its own zone.
    pub fn cluster(dir: &Path, n: usize) -> Garage {
        let secret = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
        let nodes: Vec<Node> = (0..n)
            .map(|i| Node::new(&dir.join(format!("node{i}")), secret, n as u8))
            .collect();
        let first = &nodes[0];
        let ids: Vec<String> = nodes.iter().map(|n| n.node_id()).collect();
        for id in ids.iter().skip(1) {
            first.cli(&["node", "connect", id]);
        }
        for (i, id) in ids.iter().enumerate() {
            let short = id.split('@').next().unwrap();
            first.cli(&[
                "layout",
                "assign",
                "-z",
                &format!("dc{i}"),
                "-c",
                "1G",
                short,
            ]);
        }
        first.cli(&["layout", "apply", "--version", "1"]);
        let g = Garage { nodes };
        g.wait_ready();
        let first = &g.nodes[0];
        first.cli(&["bucket", "create", BUCKET]);
        first.cli(&["key", "import", "--yes", "-n", "courtrec", KEY_ID, SECRET]);
        first.cli(&[
            "bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", KEY_ID,
        ]);
        g
    }

    /// Waits until the layout is in force on every node (a bucket can be made).
    fn wait_ready(&self) {
        let t0 = Instant::now();
        loop {
            let out = Command::new(garage_bin())
                .arg("-c")
                .arg(&self.nodes[0].config)
                .args(["status"])
                .output()
                .unwrap();
            let s = String::from_utf8_lossy(&out.stdout);
            if out.status.success() && !s.contains("NO ROLE") && !s.contains("pending") {
                return;
            }
            assert!(t0.elapsed() < Duration::from_secs(60), "garage layout: {s}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.nodes[0].s3_port)
    }

    /// A credentials file for the box's key.
    pub fn credentials_file(&self, dir: &Path) -> PathBuf {
        let p = dir.join("archive-credentials");
        std::fs::write(
            &p,
            format!("[default]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n"),
        )
        .unwrap();
        p
    }

    /// An `[archive]` section for `prefix`, with `extra` lines.
    pub fn archive_toml(&self, dir: &Path, prefix: &str, extra: &str) -> String {
        format!(
            "[archive]\nendpoint = \"{}\"\nregion = \"garage\"\nbucket = \"{BUCKET}\"\nprefix = \"{prefix}\"\ncredentials_file = \"{}\"\n{extra}\n",
            self.endpoint(),
            self.credentials_file(dir).display()
        )
    }
}

/// The bucket as the tests look at it (through courtrec's own S3 client).
pub struct Bucket {
    pub store: courtrec::store::Store,
    rt: tokio::runtime::Runtime,
}

impl Bucket {
    pub fn new(endpoint: &str) -> Bucket {
        let mut a: courtrec::config::archive::Archive = toml::from_str(&format!(
            "endpoint = \"{endpoint}\"\nbucket = \"{BUCKET}\"\n"
        ))
        .unwrap();
        a.validate(None).unwrap();
        let c = courtrec::config::archive::Credentials {
            access_key_id: KEY_ID.into(),
            secret_access_key: SECRET.into(),
        };
        Bucket {
            store: courtrec::store::Store::new(&a, &c).unwrap(),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        }
    }

    /// Keys and sizes under `prefix` (empty when the store does not answer).
    /// Keys and sizes under `prefix`; empty if the store does not answer three times
    /// running (a single failed call under load is not taken for an empty prefix).
    pub fn list(&self, prefix: &str) -> Vec<(String, u64)> {
        for _ in 0..2 {
            if let Ok(l) = self.rt.block_on(self.store.list(prefix, None)) {
                return l.objects;
            }
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        self.rt
            .block_on(self.store.list(prefix, None))
            .map(|l| l.objects)
            .unwrap_or_default()
    }

    /// Keys and sizes under `prefix`; fails the test if the store does not answer.
    pub fn list_strict(&self, prefix: &str) -> Vec<(String, u64)> {
        self.rt
            .block_on(self.store.list(prefix, None))
            .map(|l| l.objects)
            .unwrap_or_else(|e| panic!("listing {prefix}: {e}"))
    }

    pub fn get(&self, key: &str) -> Vec<u8> {
        self.rt
            .block_on(self.store.get_bytes(key, 1 << 30))
            .unwrap()
    }

    /// Overwrites (or adds) an object, as someone with the bucket's key could.
    pub fn overwrite(&self, key: &str, body: &[u8]) {
        self.rt
            .block_on(self.store.put_mutable(key, body.to_vec()))
            .unwrap()
    }

    /// Downloads everything under `prefix` into `dir`, as it is.
    pub fn download(&self, prefix: &str, dir: &Path) {
        for (k, _) in self.list(prefix) {
            let rel = k.strip_prefix(prefix).unwrap();
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, self.get(&k)).unwrap();
        }
    }
}
