//! A real browser for the dashboard tests: Debian's Chromium, headless, driven over WebDriver
//! by `chromedriver` (both installed by `make deps`) through the `fantoccini` client. Missing
//! either fails the test: the dashboard is not tested without a browser.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use tokio::runtime::Runtime;

/// Chromium's own binary (`/usr/bin/chromium` is a shell wrapper reading `/etc/chromium.d`).
const CHROMIUM: &str = "/usr/lib/chromium/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

pub struct Browser {
    runtime: Runtime,
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    /// Where screenshots go: the test's output folder.
    pub shots: PathBuf,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    /// A headless Chromium the size of a laptop screen (`width` × `height`).
    pub fn start(width: u32, height: u32) -> Browser {
        for program in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(program).exists(),
                "{program} is missing: run `make deps` (it installs chromium and chromium-driver)"
            );
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    // The sandbox needs user namespaces a test machine may not grant.
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--disable-extensions",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--password-store=basic",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let attempt = runtime.block_on(
                ClientBuilder::rustls()
                    .unwrap()
                    .capabilities(capabilities.clone())
                    .connect(&url),
            );
            match attempt {
                Ok(client) => break client,
                Err(e) if Instant::now() > deadline => panic!("no browser session: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        };
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Browser {
            runtime,
            client,
            driver,
            _profile: profile,
            shots,
        }
    }

    pub fn block_on<T>(&self, future: impl std::future::Future<Output = T>) -> T {
        self.runtime.block_on(future)
    }

    pub fn goto(&self, url: &str) {
        self.block_on(self.client.goto(url)).unwrap();
    }

    pub fn url(&self) -> String {
        self.block_on(self.client.current_url())
            .unwrap()
            .to_string()
    }

    /// The visible text of the first element `css` finds.
    pub fn text(&self, css: &str) -> String {
        self.block_on(async {
            let element = self.client.find(Locator::Css(css)).await?;
            element.text().await
        })
        .unwrap_or_else(|e| panic!("{css}: {e}"))
    }

    pub fn exists(&self, css: &str) -> bool {
        self.block_on(self.client.find_all(Locator::Css(css)))
            .map(|found| !found.is_empty())
            .unwrap_or(false)
    }

    pub fn type_into(&self, css: &str, text: &str) {
        self.block_on(async {
            let element = self.client.find(Locator::Css(css)).await?;
            element.clear().await?;
            element.send_keys(text).await
        })
        .unwrap_or_else(|e| panic!("{css}: {e}"));
    }

    pub fn click(&self, css: &str) {
        self.block_on(async {
            let element = self.client.find(Locator::Css(css)).await?;
            element.click().await
        })
        .unwrap_or_else(|e| panic!("{css}: {e}"));
    }

    /// Runs a script in the page and returns its JSON value.
    pub fn script(&self, script: &str) -> serde_json::Value {
        self.block_on(self.client.execute(script, vec![])).unwrap()
    }

    /// Saves a PNG of the window under [`Browser::shots`].
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.block_on(self.client.screenshot()).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    pub fn resize(&self, width: u32, height: u32) {
        self.block_on(self.client.set_window_size(width, height))
            .unwrap();
    }

    /// Waits until the page's text has `wanted` (the page may change by itself: live updates).
    pub fn wait_for_text(&self, css: &str, wanted: &str) {
        let deadline = Instant::now() + Duration::from_secs(45);
        loop {
            let text = self
                .block_on(async {
                    let element = self.client.find(Locator::Css(css)).await?;
                    element.text().await
                })
                .unwrap_or_default();
            if text.contains(wanted) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{css} never showed {wanted:?}; it shows:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let client = self.client.clone();
        let _ = self.runtime.block_on(client.close());
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
