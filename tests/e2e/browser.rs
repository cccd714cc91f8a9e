//! A real headless Chromium driven through WebDriver (Debian's `chromium` and `chromium-driver`,
//! with the `fantoccini` client): the console's tests look at pages as a person's browser
//! draws them. Calls block, so tests read like the others.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::support::{free_port, wait_for};

pub struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    driver_url: String,
    session: String,
    /// Where downloads land.
    pub downloads: tempfile::TempDir,
}

fn chromium() -> &'static str {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("chromium is installed (scripts/test.sh installs Debian's chromium)")
}

impl Browser {
    /// A headless Chromium with a window of `width` x `height` CSS pixels.
    pub fn start(width: u32, height: u32) -> Self {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts (Debian's chromium-driver)");
        let driver_url = format!("http://127.0.0.1:{port}");
        let status = format!("{driver_url}/status");
        wait_for("chromedriver", Duration::from_secs(30), || {
            reqwest::blocking::get(&status)
                .ok()
                .filter(|r| r.status().is_success())
        });
        let downloads = tempfile::tempdir().unwrap();
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--hide-scrollbars", format!("--window-size={width},{height}")],
                "prefs": {
                    "download.default_directory": downloads.path().display().to_string(),
                    "download.prompt_for_download": false,
                },
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = rt
            .block_on(async {
                let mut b =
                    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
                b.capabilities(caps.as_object().unwrap().clone());
                b.connect(&driver_url).await
            })
            .expect("a WebDriver session");
        let session = rt
            .block_on(client.session_id())
            .unwrap()
            .expect("a session id");
        let b = Self {
            rt,
            client: Some(client),
            driver,
            driver_url,
            session,
            downloads,
        };
        b.resize(width, height);
        b
    }

    fn client(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    /// Sets the viewport (the page's inner width and height) to `width` x `height`.
    pub fn resize(&self, width: u32, height: u32) {
        // The window is larger than the viewport by its frame; measure it and make up for it.
        self.rt
            .block_on(self.client().set_window_size(width, height))
            .unwrap();
        let inner = self.js("return [window.innerWidth, window.innerHeight]", vec![]);
        let dw = width as i64 - inner[0].as_i64().unwrap_or(width as i64);
        let dh = height as i64 - inner[1].as_i64().unwrap_or(height as i64);
        if dw != 0 || dh != 0 {
            self.rt
                .block_on(
                    self.client()
                        .set_window_size((width as i64 + dw) as u32, (height as i64 + dh) as u32),
                )
                .unwrap();
        }
    }

    /// Opens `url` and waits until the console says the page is complete.
    pub fn open(&self, url: &str) {
        self.goto(url);
        self.wait_ready(url);
    }

    /// Opens `url` without waiting for anything.
    pub fn goto(&self, url: &str) {
        self.rt.block_on(self.client().goto(url)).unwrap();
    }

    /// Waits until the console's page is complete (`data-state="ready"` on the body).
    pub fn wait_ready(&self, what: &str) {
        wait_for(
            &format!("{what} to be complete"),
            Duration::from_secs(60),
            || {
                let v = self.js("return document.body.dataset.state || ''", vec![]);
                (v == "ready").then_some(())
            },
        );
    }

    /// Runs `script` in the page and answers what it returns.
    pub fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.rt
            .block_on(self.client().execute(script, args))
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// The text of the first element matching `css`.
    pub fn text(&self, css: &str) -> String {
        self.rt
            .block_on(async { self.client().find(Locator::Css(css)).await?.text().await })
            .unwrap_or_else(|e| panic!("no text at {css}: {e}"))
    }

    /// The texts of every element matching `css`.
    pub fn texts(&self, css: &str) -> Vec<String> {
        let v = self.js(
            "return [...document.querySelectorAll(arguments[0])].map(e => e.innerText.trim())",
            vec![json!(css)],
        );
        serde_json::from_value(v).unwrap()
    }

    /// How many elements match `css`.
    pub fn count(&self, css: &str) -> usize {
        self.js(
            "return document.querySelectorAll(arguments[0]).length",
            vec![json!(css)],
        )
        .as_u64()
        .unwrap() as usize
    }

    pub fn click(&self, css: &str) {
        self.rt
            .block_on(async { self.client().find(Locator::Css(css)).await?.click().await })
            .unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
    }

    /// Replaces the value of the field at `css` with `text`, as typed.
    pub fn type_into(&self, css: &str, text: &str) {
        self.rt
            .block_on(async {
                let e = self.client().find(Locator::Css(css)).await?;
                e.clear().await?;
                e.send_keys(text).await
            })
            .unwrap_or_else(|e| panic!("cannot type into {css}: {e}"));
    }

    pub fn current_url(&self) -> String {
        self.rt
            .block_on(self.client().current_url())
            .unwrap()
            .to_string()
    }

    /// Saves a screenshot of the viewport to `path`.
    pub fn screenshot(&self, path: &Path) {
        let png = self.rt.block_on(self.client().screenshot()).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// Saves a screenshot of the whole page: the window grows to the page's height first.
    pub fn screenshot_page(&self, path: &Path, width: u32) {
        let h = self
            .js("return document.documentElement.scrollHeight", vec![])
            .as_u64()
            .unwrap() as u32;
        self.resize(width, h.clamp(400, 6000));
        self.screenshot(path);
    }

    /// Browser console entries at level SEVERE since the last call (errors, failed requests,
    /// uncaught exceptions, CSP violations).
    pub fn console_errors(&self) -> Vec<String> {
        let url = format!("{}/session/{}/se/log", self.driver_url, self.session);
        let body: Value = reqwest::blocking::Client::new()
            .post(&url)
            .json(&json!({"type": "browser"}))
            .send()
            .and_then(reqwest::blocking::Response::json)
            .unwrap_or_else(|e| panic!("chromedriver's browser log: {e}"));
        body["value"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or("").to_string())
            .collect()
    }

    /// Waits up to `timeout` for a file to be downloaded, and answers its path.
    pub fn downloaded(&self, name: &str, timeout: Duration) -> PathBuf {
        let path = self.downloads.path().join(name);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if path.exists() && std::fs::metadata(&path).is_ok_and(|m| m.len() > 0) {
                return path;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("{name} was not downloaded within {timeout:?}");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            let _ = self.rt.block_on(c.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
