//! Progress bars for long commands, shown only to a person at a terminal.
//!
//! When stderr is a pipe or a file (scripts, tests, CI logs) the bar is
//! hidden, so nothing but real output and errors reaches it.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A bar counting to `len` (a spinner if `len` is unknown), labelled with
/// the `unit` it counts, or a hidden bar when stderr is not a terminal.
pub fn bar(len: Option<u64>, unit: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (bar, template) = match len {
        Some(len) => (
            ProgressBar::new(len),
            format!("{{bar:40}} {{human_pos}}/{{human_len}} {unit} ({{per_sec}}, eta {{eta}})"),
        ),
        None => (
            ProgressBar::new_spinner(),
            format!("{{spinner}} {{human_pos}} {unit} ({{per_sec}})"),
        ),
    };
    // The templates are fixed, so this only fails if they are edited wrong;
    // the default style is then still a working bar.
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}
