//! The FIFO keys as values that can only hold what SQS accepts: a `MessageGroupId` or
//! `MessageDeduplicationId` that exists is valid, so no check is repeated downstream.

/// Why a string is not a valid `MessageGroupId` or `MessageDeduplicationId`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FifoKeyError {
    #[error("is empty")]
    Empty,
    #[error("is not a string")]
    NotAString,
    #[error("is {0} characters long; SQS allows at most 128")]
    TooLong(usize),
    #[error("contains {0:?}; SQS allows only ASCII letters, digits and punctuation")]
    InvalidCharacter(char),
}

/// SQS's rule for both FIFO keys: 1 to 128 characters, ASCII alphanumerics and punctuation.
fn check_fifo_key(s: &str) -> Result<(), FifoKeyError> {
    if s.is_empty() {
        return Err(FifoKeyError::Empty);
    }
    if let Some(c) = s.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(FifoKeyError::InvalidCharacter(c));
    }
    if s.len() > 128 {
        return Err(FifoKeyError::TooLong(s.len()));
    }
    Ok(())
}

/// A `MessageGroupId` SQS will accept. Only [`MessageGroupId::parse`] and
/// [`MessageGroupId::for_event_setup`] make one, so an invalid id never reaches SQS.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageGroupId(String);

impl MessageGroupId {
    pub fn parse(s: &str) -> Result<Self, FifoKeyError> {
        check_fifo_key(s)?;
        Ok(Self(s.to_owned()))
    }

    /// The vendor's format for events of one setup: `EventSetup_<id>`.
    #[must_use]
    pub fn for_event_setup(id: &EventSetupId) -> Self {
        Self(format!("EventSetup_{}", id.0))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A `MessageDeduplicationId` SQS will accept.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeduplicationId(String);

impl DeduplicationId {
    pub fn parse(s: &str) -> Result<Self, FifoKeyError> {
        check_fifo_key(s)?;
        Ok(Self(s.to_owned()))
    }

    /// The Unix time in milliseconds of an id in the vendor's format, if it is one.
    #[must_use]
    pub fn unix_millis(&self) -> Option<i64> {
        if self.0.len() != "2025-02-12T14:30:45.123".len() {
            return None;
        }
        chrono::NaiveDateTime::parse_from_str(&self.0, "%Y-%m-%dT%H:%M:%S%.3f")
            .ok()
            .map(|t| t.and_utc().timestamp_millis())
    }

    /// The vendor's format, `YYYY-MM-DDTHH:MM:SS.mmm` in UTC, for a Unix time in milliseconds.
    #[must_use]
    pub fn from_unix_millis(ms: i64) -> Self {
        use chrono::{Datelike as _, Timelike as _};
        // Written out rather than through a strftime string, which is parsed on every call.
        let t = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
        Self(format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.timestamp_subsec_millis()
        ))
    }

    /// A SHA-256 digest in lowercase hex: 64 characters, always valid.
    #[must_use]
    pub fn from_digest(digest: &[u8; 32]) -> Self {
        Self(hex::encode(digest))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The WorkN Event Setup ID from configuration, checked so that `EventSetup_<id>` is a
/// valid group id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSetupId(String);

impl EventSetupId {
    pub fn parse(s: &str) -> Result<Self, FifoKeyError> {
        check_fifo_key(s)?;
        let max = 128 - "EventSetup_".len();
        if s.len() > max {
            return Err(FifoKeyError::TooLong(s.len() + "EventSetup_".len()));
        }
        Ok(Self(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_keys_follow_sqs_rules() {
        assert!(MessageGroupId::parse("EventSetup_42").is_ok());
        assert_eq!(MessageGroupId::parse(""), Err(FifoKeyError::Empty));
        assert_eq!(
            MessageGroupId::parse("a b"),
            Err(FifoKeyError::InvalidCharacter(' '))
        );
        assert_eq!(
            DeduplicationId::parse("é"),
            Err(FifoKeyError::InvalidCharacter('é'))
        );
        assert!(DeduplicationId::parse(&"x".repeat(128)).is_ok());
        assert_eq!(
            DeduplicationId::parse(&"x".repeat(129)),
            Err(FifoKeyError::TooLong(129))
        );
        assert!(DeduplicationId::parse(r##"!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~"##).is_ok());
        assert!(EventSetupId::parse(&"1".repeat(117)).is_ok());
        assert!(EventSetupId::parse(&"1".repeat(118)).is_err());
    }

    #[test]
    fn timestamp_ids_use_the_vendor_format() {
        // 2025-02-12T14:30:45.123Z
        let id = DeduplicationId::from_unix_millis(1_739_370_645_123);
        assert_eq!(id.as_str(), "2025-02-12T14:30:45.123");
        assert_eq!(id.unix_millis(), Some(1_739_370_645_123));
        for other in [
            "2025-02-12T14:30:45",
            "m-1",
            "2025-02-12T14:30:45.1234",
            "2025-02-30T14:30:45.123",
        ] {
            assert_eq!(
                DeduplicationId::parse(other).unwrap().unix_millis(),
                None,
                "{other}"
            );
        }
        assert_eq!(
            DeduplicationId::from_unix_millis(1_739_370_645_000).as_str(),
            "2025-02-12T14:30:45.000"
        );
    }
}
