//! The memfs daemon (placeholder, being written).
fn main() {
    eprintln!("slabfuse-memfs: not built yet");
    std::process::exit(2);
}
