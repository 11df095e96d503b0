//! Argument handling shared by the examples.

/// The broker URL (first argument if it starts with `ws://`, else the
/// default) and the remaining arguments.
pub fn url_and_rest() -> (String, Vec<String>) {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let url = if args.first().is_some_and(|a| a.starts_with("ws://")) {
        args.remove(0)
    } else {
        "ws://127.0.0.1:8080/ws".to_owned()
    };
    (url, args)
}
