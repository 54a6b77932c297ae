//! Failed attempts are logged one by one up to [`FAILURES_LOGGED_PER_SECOND`] per subscription
//! per second; past that they are counted, and the count is logged with the next one that gets
//! through. An endpoint that is down while a large backlog retries would otherwise write a line
//! per event per attempt. The admin API keeps every recent attempt regardless.

pub const FAILURES_LOGGED_PER_SECOND: u32 = 20;

#[derive(Default)]
pub struct LogBudget {
    window_start_ms: i64,
    logged: u32,
    suppressed: u64,
}

#[derive(Debug, PartialEq)]
pub enum Admit {
    /// Log this one, and say how many were suppressed since the last logged.
    Log {
        suppressed: u64,
    },
    Suppress,
}

impl LogBudget {
    pub fn admit(&mut self, now_ms: i64) -> Admit {
        if now_ms - self.window_start_ms >= 1000 {
            self.window_start_ms = now_ms;
            self.logged = 0;
        }
        if self.logged >= FAILURES_LOGGED_PER_SECOND {
            self.suppressed += 1;
            return Admit::Suppress;
        }
        self.logged += 1;
        Admit::Log {
            suppressed: std::mem::take(&mut self.suppressed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_log_budget_counts_what_it_suppresses_and_reports_it_next_second() {
        let mut budget = LogBudget::default();
        let start = 10_000;
        for _ in 0..FAILURES_LOGGED_PER_SECOND {
            assert_eq!(budget.admit(start), Admit::Log { suppressed: 0 });
        }
        for _ in 0..5 {
            assert_eq!(budget.admit(start + 999), Admit::Suppress);
        }
        assert_eq!(budget.admit(start + 1000), Admit::Log { suppressed: 5 });
        assert_eq!(budget.admit(start + 1001), Admit::Log { suppressed: 0 });
    }
}
