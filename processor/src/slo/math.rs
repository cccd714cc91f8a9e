//! SLO arithmetic over counts of good and total events: the SLI, the error budget left and the
//! burn rates, as the contract defines them, and the multi-window burn-rate conditions of the
//! Google SRE workbook. Pure: counts in, figures out.

/// Good and total events of some span.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Good events.
    pub good: u64,
    /// All events.
    pub total: u64,
}

impl Counts {
    /// Bad events.
    pub fn bad(&self) -> u64 {
        self.total.saturating_sub(self.good)
    }

    /// Adds another span's counts.
    pub fn add(&mut self, o: Counts) {
        self.good += o.good;
        self.total += o.total;
    }

    /// `good / total`; `None` without events.
    pub fn sli(&self) -> Option<f64> {
        (self.total > 0).then(|| self.good as f64 / self.total as f64)
    }

    /// The bad fraction over `1 - objective`: 1 spends the budget exactly over the period;
    /// `None` without events.
    pub fn burn_rate(&self, objective: f64) -> Option<f64> {
        (self.total > 0).then(|| (self.bad() as f64 / self.total as f64) / (1.0 - objective))
    }

    /// `1 - (bad / total) / (1 - objective)`: 1 untouched, 0 spent, negative overspent; 1
    /// without events.
    pub fn budget_remaining(&self, objective: f64) -> f64 {
        1.0 - self.burn_rate(objective).unwrap_or(0.0)
    }
}

/// The burn-rate windows measured, in minutes: the contract's 5m, 1h, 6h and 1d, and the
/// workbook's 30m, 2h and 3d that pair with them.
pub const BURN_WINDOWS_MIN: [i64; 7] = [5, 30, 60, 120, 360, 1440, 4320];

/// Burn rates over [`BURN_WINDOWS_MIN`], in that order.
pub type BurnRates = [Option<f64>; 7];

/// The burn rate over `minutes` from `rates`.
pub fn rate(rates: &BurnRates, minutes: i64) -> Option<f64> {
    BURN_WINDOWS_MIN
        .iter()
        .position(|&m| m == minutes)
        .and_then(|i| rates[i])
}

/// One multi-window burn-rate condition: both windows burn faster than `factor`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurnCondition {
    /// The long window, minutes.
    pub long_min: i64,
    /// The short window, minutes (the alert resolves quickly once the burn stops).
    pub short_min: i64,
    /// The burn rate both must exceed.
    pub factor: f64,
    /// Whether it pages (`critical`) or tickets (`warning`).
    pub critical: bool,
}

/// The workbook's conditions: 2% of a 30-day budget in an hour or 5% in 6 hours page; 10% in a
/// day or 10% in 3 days ticket.
pub const BURN_CONDITIONS: [BurnCondition; 4] = [
    BurnCondition {
        long_min: 60,
        short_min: 5,
        factor: 14.4,
        critical: true,
    },
    BurnCondition {
        long_min: 360,
        short_min: 30,
        factor: 6.0,
        critical: true,
    },
    BurnCondition {
        long_min: 1440,
        short_min: 120,
        factor: 3.0,
        critical: false,
    },
    BurnCondition {
        long_min: 4320,
        short_min: 360,
        factor: 1.0,
        critical: false,
    },
];

/// The first (most severe) condition `rates` meet.
pub fn burning(rates: &BurnRates) -> Option<BurnCondition> {
    BURN_CONDITIONS.into_iter().find(|c| {
        let over = |m| rate(rates, m).is_some_and(|r| r > c.factor);
        over(c.long_min) && over(c.short_min)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sli_budget_and_burn_follow_the_contract() {
        let c = Counts {
            good: 9_990,
            total: 10_000,
        };
        assert_eq!(c.sli(), Some(0.999));
        // 0.1% bad against a 0.1% budget: burning exactly, the budget spent.
        assert!((c.burn_rate(0.999).unwrap() - 1.0).abs() < 1e-9);
        assert!(c.budget_remaining(0.999).abs() < 1e-9);
        let c = Counts {
            good: 9_980,
            total: 10_000,
        };
        assert!(
            (c.budget_remaining(0.999) + 1.0).abs() < 1e-9,
            "overspent twice"
        );
        assert_eq!(Counts::default().budget_remaining(0.99), 1.0);
        assert_eq!(Counts::default().burn_rate(0.99), None);
    }

    #[test]
    fn a_fast_burn_pages_only_when_both_windows_burn() {
        let mut r: BurnRates = [
            Some(20.0),
            Some(2.0),
            Some(15.0),
            Some(2.0),
            Some(2.0),
            None,
            None,
        ];
        assert!(burning(&r).is_some_and(|c| c.critical && c.long_min == 60));
        r[0] = Some(1.0); // the burn stopped: the short window clears the page
        assert_eq!(burning(&r), None);
        let slow: BurnRates = [None, None, None, Some(4.0), Some(1.5), Some(3.5), Some(1.2)];
        assert!(burning(&slow).is_some_and(|c| !c.critical && c.long_min == 1440));
    }
}
