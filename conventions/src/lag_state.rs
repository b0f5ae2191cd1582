//! The state of a consumer group on a partition, as the collector's lag rules conclude it
//! (Burrow's vocabulary). One enum with one text form: the collector stores it, the `lag`
//! command and the dashboard read it back through [`LagState::parse`], so renaming a state
//! is a compile error rather than a silent mismatch.

use std::fmt;
use std::str::FromStr;

/// A consumer group's state on a partition, in order of severity: a group shows the
/// greatest of its partitions' states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum LagState {
    /// No committed offset, or no samples: nothing can be said.
    #[default]
    Unknown,
    /// Caught up, or catching up.
    Ok,
    /// Falling behind, or over a warning threshold.
    Warn,
    /// Over an error threshold, or messages were lost to retention.
    Err,
    /// The committed offset went backwards (a reset or a replay).
    Rewind,
    /// The group is alive but its committed offset does not move while messages wait.
    Stall,
    /// The group has no live members (or stopped reporting) while messages wait.
    Stop,
}

/// A text that names no lag state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownLagState(pub String);

impl fmt::Display for UnknownLagState {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "unknown lag state {:?} (expected one of {})",
            self.0,
            LagState::ALL.map(LagState::name).join(", ")
        )
    }
}

impl std::error::Error for UnknownLagState {}

impl LagState {
    /// Every state, least severe first.
    pub const ALL: [LagState; 7] = [
        LagState::Unknown,
        LagState::Ok,
        LagState::Warn,
        LagState::Err,
        LagState::Rewind,
        LagState::Stall,
        LagState::Stop,
    ];

    /// The state's one text form: upper case, as Burrow prints it and as it is stored.
    pub fn name(self) -> &'static str {
        match self {
            LagState::Unknown => "UNKNOWN",
            LagState::Ok => "OK",
            LagState::Warn => "WARN",
            LagState::Err => "ERR",
            LagState::Rewind => "REWIND",
            LagState::Stall => "STALL",
            LagState::Stop => "STOP",
        }
    }

    /// Parses a state name, in any case.
    pub fn parse(name: &str) -> Option<LagState> {
        LagState::ALL
            .into_iter()
            .find(|state| state.name().eq_ignore_ascii_case(name))
    }

    /// Whether the group is in trouble on this partition: anything worse than OK.
    pub fn is_problem(self) -> bool {
        self > LagState::Ok
    }
}

impl fmt::Display for LagState {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

impl FromStr for LagState {
    type Err = UnknownLagState;

    fn from_str(text: &str) -> Result<LagState, UnknownLagState> {
        LagState::parse(text).ok_or_else(|| UnknownLagState(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_round_trips_through_its_name() {
        for state in LagState::ALL {
            assert_eq!(LagState::parse(state.name()), Some(state), "{state}");
            assert_eq!(
                LagState::parse(&state.name().to_lowercase()),
                Some(state),
                "{state} in lower case"
            );
            assert_eq!(state.name().parse::<LagState>(), Ok(state));
        }
    }

    #[test]
    fn order_is_severity() {
        let cases = [
            (LagState::Ok, LagState::Unknown, "knowing beats not knowing"),
            (
                LagState::Warn,
                LagState::Ok,
                "behind is worse than caught up",
            ),
            (
                LagState::Err,
                LagState::Warn,
                "an error threshold is worse than a warning",
            ),
            (
                LagState::Stall,
                LagState::Err,
                "a stuck group is worse than a slow one",
            ),
            (LagState::Stop, LagState::Stall, "a dead group is the worst"),
        ];
        for (worse, better, reason) in cases {
            assert!(worse > better, "{reason}");
        }
        assert!(!LagState::Ok.is_problem());
        assert!(LagState::Warn.is_problem());
    }

    #[test]
    fn unknown_names_are_errors_that_list_the_states() {
        let error = "lagging".parse::<LagState>().unwrap_err();
        assert!(error.to_string().contains("OK, WARN"), "{error}");
        assert_eq!(LagState::parse(""), None);
    }
}
