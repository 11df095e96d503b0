//! The browser dashboard's static files, embedded in the binary.
//!
//! The dashboard (`broker/assets/`: a watchlist, a firehose of the busiest
//! symbols and a latency panel) is plain ES modules with no build step, so the
//! files are served exactly as they are in the repository. `feed.js` runs in
//! a Web Worker and holds the WebSocket, so the page's main thread only paints. Embedding them with
//! `include_bytes!` keeps the broker a single self-contained binary: `GET /`
//! works wherever the binary is copied, with no asset directory to deploy.

/// One embedded file and the `Content-Type` to serve it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    /// The value of the `Content-Type` header.
    pub content_type: &'static str,
    /// The file's bytes.
    pub body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
// Browsers only run a module script served with a JavaScript MIME type.
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The embedded file for a request path, or `None` when the path is not part
/// of the dashboard. `/` serves the page itself.
pub fn asset(path: &str) -> Option<Asset> {
    let (content_type, body): (&'static str, &'static [u8]) = match path {
        "/" | "/index.html" => (HTML, include_bytes!("../../assets/index.html")),
        "/dashboard.js" => (JS, include_bytes!("../../assets/dashboard.js")),
        "/feed.js" => (JS, include_bytes!("../../assets/feed.js")),
        "/dashboard.css" => (CSS, include_bytes!("../../assets/dashboard.css")),
        "/msgpack.js" => (JS, include_bytes!("../../assets/msgpack.js")),
        _ => return None,
    };
    Some(Asset { content_type, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every quoted path in `text` that names a local `.js` or `.css` file,
    /// as a request path (`./x.js` and `/x.js` both become `/x.js`).
    fn local_references(text: &str) -> Vec<String> {
        text.split(['"', '\''])
            .filter(|s| s.ends_with(".js") || s.ends_with(".css"))
            .filter_map(|s| s.strip_prefix("./").or_else(|| s.strip_prefix('/')))
            .filter(|s| !s.contains(['/', ' ', '<', '>']))
            .map(|s| format!("/{s}"))
            .collect()
    }

    #[test]
    fn every_referenced_asset_resolves_with_its_type() {
        let page = asset("/").unwrap();
        assert_eq!(page.content_type, HTML);
        assert_eq!(asset("/index.html"), Some(page));

        let mut pending = vec!["/".to_owned()];
        let mut seen = Vec::new();
        while let Some(path) = pending.pop() {
            if seen.contains(&path) {
                continue;
            }
            let file =
                asset(&path).unwrap_or_else(|| panic!("{path} is referenced but not served"));
            let want = if path.ends_with(".css") {
                CSS
            } else if path.ends_with(".js") {
                JS
            } else {
                HTML
            };
            assert_eq!(file.content_type, want, "{path}");
            let text = std::str::from_utf8(file.body).unwrap();
            assert!(!text.trim().is_empty(), "{path} is empty");
            pending.extend(local_references(text));
            seen.push(path);
        }
        // The page reaches every served file: none is embedded for nothing.
        for path in [
            "/",
            "/dashboard.js",
            "/feed.js",
            "/dashboard.css",
            "/msgpack.js",
        ] {
            assert!(seen.iter().any(|p| p == path), "{path} is not referenced");
        }
    }

    #[test]
    fn unknown_paths_are_not_assets() {
        for path in [
            "",
            "/ws",
            "/stats",
            "/assets/index.html",
            "/../Cargo.toml",
            "/dashboard.js?x",
        ] {
            assert_eq!(asset(path), None, "{path}");
        }
    }
}
