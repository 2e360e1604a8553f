//! The outbox against real destinations: one that accepts, one that refuses the association,
//! one that is down, and one that answers C-STORE with a failure. Each ends as the outbox rules
//! say: delivered; one failure record without retries; bounded retries then failure.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use argus::config::{OutboxSettings, Peer};
use argus::metrics::Metrics;
use argus::send::{self, Delivery, OutboxItem, Sender};
use common::{Node, free_port, testdata};
use tokio::sync::{Notify, watch};

fn settings() -> OutboxSettings {
    OutboxSettings {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_millis(400),
        reply_to_sender: true,
        destinations: Vec::new(),
    }
}

fn peer(ae_title: &str, port: u16) -> Peer {
    Peer { ae_title: ae_title.into(), host: "127.0.0.1".into(), port }
}

/// Queues one real CT file for `destination`, runs the sender until the item settles, and
/// returns the item.
fn deliver(peers: Vec<Peer>, destination: &str) -> OutboxItem {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(redb::Database::create(dir.path().join("outbox.redb")).unwrap());
    send::create_table(&db).unwrap();
    let file = testdata().join("dicom/ct/CT_small.dcm");
    let item = OutboxItem::new("job", "1.2.3", file, destination, false);
    let txn = db.begin_write().unwrap();
    send::enqueue(&txn, std::slice::from_ref(&item)).unwrap();
    txn.commit().unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (stop, shutdown) = watch::channel(false);
        let sender = Sender {
            db: db.clone(),
            settings: settings(),
            peers,
            calling_ae: "ARGUS".into(),
            metrics: Arc::new(Metrics::new()),
            wake: Arc::new(Notify::new()),
            changed: Arc::new(Notify::new()),
        };
        let task = tokio::spawn(sender.run(shutdown));

        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let current = send::all_items(&db).unwrap().remove(0);
            if current.state != Delivery::Pending || Instant::now() > deadline {
                let _ = stop.send(true);
                let _ = task.await;
                return current;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

#[test]
fn accepting_destination_receives_the_object() {
    let dir = tempfile::tempdir().unwrap();
    let destination = Node::start(&dir.path().join("dest"), &[]);

    let item = deliver(vec![peer("ARGUS", destination.port)], "ARGUS");

    assert_eq!(item.state, Delivery::Sent);
    assert_eq!(item.attempts, 1);
}

#[test]
fn refusing_destination_fails_once_without_retries() {
    let dir = tempfile::tempdir().unwrap();
    let destination =
        Node::start(&dir.path().join("dest"), &[("ARGUS__DICOM__ALLOWED_CALLERS", "SOMEONE")]);

    let item = deliver(vec![peer("ARGUS", destination.port)], "ARGUS");

    assert_eq!(item.state, Delivery::Failed);
    assert_eq!(item.attempts, 1, "a permanent rejection must not be retried");
    assert!(item.last_error.unwrap().contains("rejected"));
}

#[test]
fn destination_that_is_down_is_retried_a_bounded_number_of_times() {
    let item = deliver(vec![peer("DOWN", free_port())], "DOWN");

    assert_eq!(item.state, Delivery::Failed);
    assert_eq!(item.attempts, settings().max_attempts);
    assert!(item.last_error.unwrap().contains("unreachable"));
}

#[test]
fn failure_status_is_retried_then_recorded() {
    let dir = tempfile::tempdir().unwrap();
    // A destination whose size limit refuses every instance with A700 (out of resources).
    let destination =
        Node::start(&dir.path().join("dest"), &[("ARGUS__DICOM__MAX_INSTANCE_MIB", "0")]);

    let item = deliver(vec![peer("ARGUS", destination.port)], "ARGUS");

    assert_eq!(item.state, Delivery::Failed);
    assert_eq!(item.attempts, settings().max_attempts);
    assert!(item.last_error.unwrap().contains("0xA700"));
}

#[test]
fn destination_taking_only_implicit_vr_gets_the_data_set_re_encoded() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut storescp = std::process::Command::new("storescp")
        .args(["+xi", "-aet", "IMPLICIT", "-od"])
        .arg(dir.path())
        .arg(port.to_string())
        .spawn()
        .expect("storescp starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "storescp did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }

    let item = deliver(vec![peer("IMPLICIT", port)], "IMPLICIT");
    let _ = storescp.kill();
    let _ = storescp.wait();

    assert_eq!(item.state, Delivery::Sent, "{:?}", item.last_error);
    let received = std::fs::read_dir(dir.path()).unwrap().next().expect("a file arrived");
    let stored = dicom_object::open_file(received.unwrap().path()).unwrap();
    assert_eq!(stored.meta().transfer_syntax().trim_end_matches('\0'), "1.2.840.10008.1.2");
}
