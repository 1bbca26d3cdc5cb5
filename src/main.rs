fn main() {
    println!("skidder {}", env!("CARGO_PKG_VERSION"));
}
