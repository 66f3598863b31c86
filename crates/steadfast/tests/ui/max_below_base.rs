#[steadfast::retry(base = "1s", max = "100ms")]
fn f() -> Result<(), ()> {
    Ok(())
}

fn main() {}
