//! The dashboard tests' browser: `e2e::browser::Chromium` (headless Chromium over WebDriver)
//! with a runtime of its own, so the blocking tests drive it step by step.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use e2e::browser::Chromium;
use e2e::browser::Locator;
use tokio::runtime::Runtime;

pub struct Browser {
    runtime: Runtime,
    chromium: Chromium,
    /// Where screenshots go: the test's output folder.
    pub shots: PathBuf,
}

impl Browser {
    pub fn start(width: u32, height: u32) -> Browser {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let chromium = runtime.block_on(Chromium::start(width, height));
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Browser {
            runtime,
            chromium,
            shots,
        }
    }

    pub fn block_on<T>(&self, future: impl std::future::Future<Output = T>) -> T {
        self.runtime.block_on(future)
    }

    pub fn goto(&self, url: &str) {
        self.block_on(self.chromium.client.goto(url)).unwrap();
    }

    pub fn url(&self) -> String {
        self.block_on(self.chromium.client.current_url())
            .unwrap()
            .to_string()
    }

    /// The visible text of the first element `css` finds.
    pub fn text(&self, css: &str) -> String {
        self.block_on(async {
            let element = self.chromium.client.find(Locator::Css(css)).await?;
            element.text().await
        })
        .unwrap_or_else(|e| panic!("{css}: {e}"))
    }

    pub fn exists(&self, css: &str) -> bool {
        self.block_on(self.chromium.client.find_all(Locator::Css(css)))
            .map(|found| !found.is_empty())
            .unwrap_or(false)
    }

    pub fn type_into(&self, css: &str, text: &str) {
        self.block_on(async {
            let element = self.chromium.client.find(Locator::Css(css)).await?;
            element.clear().await?;
            element.send_keys(text).await
        })
        .unwrap_or_else(|e| panic!("{css}: {e}"));
    }

    pub fn click(&self, css: &str) {
        self.block_on(async {
            let element = self.chromium.client.find(Locator::Css(css)).await?;
            element.click().await
        })
        .unwrap_or_else(|e| panic!("{css}: {e}"));
    }

    /// Runs a script in the page and returns its JSON value.
    pub fn script(&self, script: &str) -> serde_json::Value {
        self.block_on(self.chromium.client.execute(script, vec![]))
            .unwrap()
    }

    /// Saves a PNG of the window under [`Browser::shots`].
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.block_on(self.chromium.client.screenshot()).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    pub fn resize(&self, width: u32, height: u32) {
        self.block_on(self.chromium.client.set_window_size(width, height))
            .unwrap();
    }

    /// Waits until the browser is at a URL ending with `suffix` (a whole URL works too) (a click's navigation may
    /// still be under way when the click returns).
    pub fn wait_for_url(&self, suffix: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let url = self.url();
            if url.ends_with(suffix) {
                return;
            }
            assert!(Instant::now() < deadline, "still at {url}, not …{suffix}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the page's text has `wanted` (the page may change by itself: live updates).
    pub fn wait_for_text(&self, css: &str, wanted: &str) {
        let deadline = Instant::now() + Duration::from_secs(45);
        loop {
            let text = self
                .block_on(async {
                    let element = self.chromium.client.find(Locator::Css(css)).await?;
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
        self.runtime.block_on(self.chromium.close());
    }
}
