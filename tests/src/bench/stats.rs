//! Median, minimum and maximum of repetitions.

use serde_json::{Value, json};

/// Summary of one metric's repetitions.
#[derive(Clone, Debug, Default)]
pub(crate) struct Summary {
    /// Median (mean of the two middle values for an even count).
    pub(crate) median: f64,
    /// Smallest.
    pub(crate) min: f64,
    /// Largest.
    pub(crate) max: f64,
    /// Every value, in repetition order.
    pub(crate) all: Vec<f64>,
}

impl Summary {
    /// Summarizes the finite values of `values`; `None` if there are none.
    pub(crate) fn of(values: &[f64]) -> Option<Summary> {
        let all: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if all.is_empty() {
            return None;
        }
        let mut s = all.clone();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let median = if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        };
        Some(Summary {
            median,
            min: s[0],
            max: s[n - 1],
            all,
        })
    }

    /// As JSON.
    pub(crate) fn to_json(&self) -> Value {
        json!({"median": self.median, "min": self.min, "max": self.max, "all": self.all})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        let s = Summary::of(&[3.0, 1.0, 2.0]).expect("values");
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let s = Summary::of(&[4.0, 1.0, 2.0, f64::NAN, 3.0]).expect("values");
        assert_eq!(s.median, 2.5);
        assert!(Summary::of(&[f64::NAN]).is_none());
    }
}
