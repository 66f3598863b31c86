#[steadfast::retry(base = "ten seconds")]
fn f() -> Result<(), ()> {
    Ok(())
}

fn main() {}
