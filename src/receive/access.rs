//! Who may associate (PS3.8 7.1.1.3 and 9.3.4): the calling AE title must be on the allowed
//! list when there is one, and the called AE title must be Argus's own unless the node accepts
//! any. A refusal uses the standard A-ASSOCIATE-RJ reasons, permanent, from the service user.

use dicom_ul::association::server::AccessControl;
use dicom_ul::pdu::{AssociationRJServiceUserReason, UserIdentity};

/// The AE title policy of the listener.
#[derive(Debug, Clone)]
pub struct AePolicy {
    pub allowed_callers: Vec<String>,
    pub accept_any_called: bool,
}

impl AccessControl for AePolicy {
    fn check_access(
        &self,
        this_ae_title: &str,
        calling_ae_title: &str,
        called_ae_title: &str,
        _user_identity: Option<&UserIdentity>,
    ) -> Result<(), AssociationRJServiceUserReason> {
        let calling = calling_ae_title.trim();
        let called = called_ae_title.trim();

        if !self.allowed_callers.is_empty() && !self.allowed_callers.iter().any(|a| a == calling) {
            tracing::warn!(
                calling_ae = calling,
                called_ae = called,
                "association rejected: calling AE title not allowed"
            );
            return Err(AssociationRJServiceUserReason::CallingAETitleNotRecognized);
        }
        if !self.accept_any_called && called != this_ae_title.trim() {
            tracing::warn!(
                calling_ae = calling,
                called_ae = called,
                "association rejected: called AE title is not this node's"
            );
            return Err(AssociationRJServiceUserReason::CalledAETitleNotRecognized);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(callers: &[&str], any: bool) -> AePolicy {
        AePolicy {
            allowed_callers: callers.iter().map(|s| s.to_string()).collect(),
            accept_any_called: any,
        }
    }

    #[test]
    fn empty_list_admits_any_caller() {
        assert!(policy(&[], false).check_access("ARGUS", "ANYONE", "ARGUS", None).is_ok());
    }

    #[test]
    fn unknown_caller_is_rejected_with_the_standard_reason() {
        let result = policy(&["PACS"], false).check_access("ARGUS", "INTRUDER", "ARGUS", None);
        assert_eq!(result, Err(AssociationRJServiceUserReason::CallingAETitleNotRecognized));
    }

    #[test]
    fn wrong_called_title_is_rejected_unless_any_is_accepted() {
        let strict = policy(&[], false).check_access("ARGUS", "PACS", "OTHER", None);
        assert_eq!(strict, Err(AssociationRJServiceUserReason::CalledAETitleNotRecognized));
        assert!(policy(&[], true).check_access("ARGUS", "PACS", "OTHER", None).is_ok());
    }
}
