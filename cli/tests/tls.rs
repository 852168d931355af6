//! `herald` against a broker with `[tls]`: `wss://` URLs with a custom CA
//! (`--ca-file` or `HERALD_CA_FILE`), client certificates for mutual TLS
//! (`--client-cert` / `--client-key`), and the errors when the broker's
//! certificate is not trusted or a flag is missing.

mod common;

use common::{Running, herald, run};
use herald_tests::tls::{self, Ca, Files};
use herald_tests::{short_grace, start_broker};

#[tokio::test]
async fn sub_and_pub_over_wss_with_a_custom_ca() {
    let (ca, files) = (Ca::new("cli CA"), Files::new());
    let broker = start_broker(|s| {
        short_grace(s);
        tls::serve(s, &files, &ca.server());
    })
    .await;
    let url = format!("wss://{}", broker.addr());
    let ca_file = tls::text(&files.write("ca.pem", &ca.pem()));
    let sub = herald(
        &url,
        &[
            "sub",
            "/orders",
            "order.created",
            "--count",
            "1",
            "--ca-file",
            &ca_file,
        ],
    );
    let subscriber = Running::started(sub, "subscribed").await;
    // The CA from the environment this time.
    let mut publish = herald(&url, &["pub", "/orders", "order.created", r#"{"id":1}"#]);
    publish.env("HERALD_CA_FILE", &ca_file);
    let done = run(publish).await;
    done.assert_code(0);
    assert_eq!(done.stdout.trim_end(), "published 1 event to 1 receiver");
    let done = subscriber.finish().await;
    done.assert_code(0);
    assert_eq!(
        done.lines(),
        [r#"{"namespace":"/orders","event":"order.created","payload":{"id":1}}"#]
    );

    // Without the CA: the system roots do not know it; exit 3, said why.
    let done = run(herald(&url, &["pub", "/orders", "x", "{}"])).await;
    done.assert_error(3, "invalid peer certificate");
    assert!(done.stderr.contains("--ca-file"), "{done:?}");
    // A CA file that is not there.
    let missing = tls::text(&files.path("nope.pem"));
    let done = run(herald(
        &url,
        &["pub", "/orders", "x", "{}", "--ca-file", &missing],
    ))
    .await;
    done.assert_error(3, "nope.pem");
    broker.shutdown().await;
}

#[tokio::test]
async fn client_certificates_for_mutual_tls() {
    let (ca, files) = (Ca::new("cli CA"), Files::new());
    let clients = Ca::new("client CA");
    let client_ca = tls::text(&files.write("clients.pem", &clients.pem()));
    let broker = start_broker(|s| {
        short_grace(s);
        tls::serve(s, &files, &ca.server());
        s.tls.client_ca_file = client_ca;
    })
    .await;
    let url = format!("wss://{}", broker.addr());
    let ca_file = tls::text(&files.write("ca.pem", &ca.pem()));
    let me = clients.client("cli");
    let cert = tls::text(&files.write("me.pem", &me.cert_pem));
    let key = tls::text(&files.write("me.key", &me.key_pem));
    let base = ["pub", "/o", "ev", "{}", "--ca-file", &ca_file];

    let with = [&base[..], &["--client-cert", &cert, "--client-key", &key]].concat();
    let done = run(herald(&url, &with)).await;
    done.assert_code(0);
    assert_eq!(done.stdout.trim_end(), "published 1 event to 0 receivers");

    let done = run(herald(&url, &base)).await;
    assert_eq!(done.code, Some(3), "no client certificate: {done:?}");

    // A certificate without its key is a usage error.
    let half = [&base[..], &["--client-cert", &cert]].concat();
    let done = run(herald(&url, &half)).await;
    done.assert_code(2);
    assert!(done.stderr.contains("--client-key"), "{done:?}");
    broker.shutdown().await;
}
