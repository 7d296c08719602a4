//! Prints how many complete logins (authorize → login form → code → token) the stand-in
//! serves per second over loopback, one after another. A number to watch, not an assertion.

mod common;

use common::*;

#[tokio::test]
async fn sequential_login_throughput_is_printed() {
    let s = start(idporten::Config::default()).await;
    // Creating a client costs more than a login (native-tls setup): few in debug builds.
    let n = if cfg!(debug_assertions) { 30 } else { 300 };
    // Fresh browsers (no SSO cookie), made before the clock starts.
    let browsers: Vec<reqwest::Client> = (0..n).map(|_| browser()).collect();
    let t = std::time::Instant::now();
    for browser in &browsers {
        let (code, v) = s
            .login(browser, "rp-a", &s.pid_a, "idporten-loa-substantial")
            .await;
        let r = s.token_basic("rp-a", SECRET_A, &code, &v).await;
        assert_eq!(r.status(), 200);
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "idporten stand-in: {n} full logins in {secs:.2} s = {:.0} logins/s ({:.1} ms each, 4 HTTP requests and 2 RS256 signatures per login)",
        n as f64 / secs,
        secs * 1000.0 / n as f64
    );
}
