#[steadfast::retry("svc.Method")]
fn f() -> u32 {
    1
}

fn main() {}
