#[steadfast::retry(max_tries = 3)]
fn f() -> Result<(), ()> {
    Ok(())
}

fn main() {}
