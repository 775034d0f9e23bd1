//! openraft's storage conformance suite against the shadowkv log store and state machine.

use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;
use shadowkv_raft::{LogStore, NodeId, StateMachine, TypeConfig};
use tempfile::TempDir;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<NodeId>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = LogStore::open(dir.path().join("log.db")).expect("open log");
        let sm = StateMachine::open(dir.path().join("sm.db"), 0).expect("open sm");
        Ok((dir, log, sm))
    }
}

#[test]
fn conformance_suite() {
    Suite::test_all(Builder).expect("conformance suite");
}
