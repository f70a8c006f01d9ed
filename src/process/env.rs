//! An environment that services can share. The supervisor holds one per service for
//! as long as it runs, and they are nearly equal: servicectl's own environment, the
//! role's exported variables (`playpen_services` names every service, so a private
//! copy each grows with the square of their number), and a few of the service's own
//! (SERVICE_NAME, its ports, …). [`Common::share`] makes an environment a shared layer
//! plus only what differs from it; every reader sees the same map as before.

use std::cmp::Ordering;
use std::collections::{BTreeMap, btree_map};
use std::ffi::OsString;
use std::iter::Peekable;
use std::sync::Arc;

type Layer = BTreeMap<String, OsString>;

/// An environment: what a service's program, hooks and scripts see, and what templates
/// are rendered with. The one type every stage passes an environment as. Reads as a
/// `BTreeMap<String, OsString>` (iteration in name order).
#[derive(Clone, Default)]
pub struct Env {
    /// Shared with other environments of the same batch (see [`Common`]).
    common: Option<Arc<Layer>>,
    /// Over the common layer: a value of this environment's own, or `None` for a
    /// variable the common layer has and this one does not.
    own: BTreeMap<String, Option<OsString>>,
}

impl Env {
    pub fn new() -> Env {
        Env::default()
    }

    pub fn get(&self, name: &str) -> Option<&OsString> {
        self.get_key_value(name).map(|(_, v)| v)
    }

    pub fn get_key_value(&self, name: &str) -> Option<(&String, &OsString)> {
        match self.own.get_key_value(name) {
            Some((k, v)) => v.as_ref().map(|v| (k, v)),
            None => self.common.as_ref()?.get_key_value(name),
        }
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn insert(&mut self, name: String, value: OsString) {
        self.own.insert(name, Some(value));
    }

    pub fn iter(&self) -> Iter<'_> {
        Iter {
            own: self.own.iter().peekable(),
            common: self.common.as_deref().map(|c| c.iter().peekable()),
        }
    }

    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// Every variable in one map of its own.
    fn flatten(self) -> Layer {
        match self.common {
            None => (self.own.into_iter())
                .filter_map(|(k, v)| Some((k, v?)))
                .collect(),
            Some(common) => {
                let mut all = Arc::unwrap_or_clone(common);
                for (k, v) in self.own {
                    match v {
                        Some(v) => all.insert(k, v),
                        None => all.remove(&k),
                    };
                }
                all
            }
        }
    }
}

/// The layer a batch of environments share: the first one [`share`](Common::share)d,
/// whole; each later one keeps only where it differs from it.
#[derive(Default)]
pub struct Common(Option<Arc<Layer>>);

impl Common {
    /// A copy of `env` (allocated by the calling thread) over the common layer.
    pub fn share(&mut self, env: &Env) -> Env {
        let Some(common) = &self.0 else {
            let all: Layer = env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let common = Arc::new(all);
            self.0 = Some(common.clone());
            return Env {
                common: Some(common),
                own: BTreeMap::new(),
            };
        };
        let unset = (common.keys())
            .filter(|k| !env.contains_key(k))
            .map(|k| (k.clone(), None));
        let differ = (env.iter())
            .filter(|(k, v)| common.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), Some(v.clone())));
        Env {
            common: Some(common.clone()),
            own: unset.chain(differ).collect(),
        }
    }
}

/// The variables in name order: the own layer's, and the common layer's it does not hide.
pub struct Iter<'a> {
    own: Peekable<btree_map::Iter<'a, String, Option<OsString>>>,
    common: Option<Peekable<btree_map::Iter<'a, String, OsString>>>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a String, &'a OsString);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let common = self.common.as_mut().and_then(|c| c.peek());
            let from_common = match (self.own.peek(), common) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some((a, _)), Some((b, _))) => match a.cmp(b) {
                    Ordering::Less => false,
                    Ordering::Greater => true,
                    Ordering::Equal => {
                        // The own layer's value (or unset) hides the common one.
                        self.common.as_mut().and_then(|c| c.next());
                        false
                    }
                },
            };
            if from_common {
                return self.common.as_mut().and_then(|c| c.next());
            }
            match self.own.next()? {
                (k, Some(v)) => return Some((k, v)),
                (_, None) => continue,
            }
        }
    }
}

impl<'a> IntoIterator for &'a Env {
    type Item = (&'a String, &'a OsString);
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl IntoIterator for Env {
    type Item = (String, OsString);
    type IntoIter = btree_map::IntoIter<String, OsString>;
    fn into_iter(self) -> Self::IntoIter {
        self.flatten().into_iter()
    }
}

impl Extend<(String, OsString)> for Env {
    fn extend<I: IntoIterator<Item = (String, OsString)>>(&mut self, iter: I) {
        self.own.extend(iter.into_iter().map(|(k, v)| (k, Some(v))));
    }
}

impl FromIterator<(String, OsString)> for Env {
    fn from_iter<I: IntoIterator<Item = (String, OsString)>>(iter: I) -> Env {
        let mut env = Env::new();
        env.extend(iter);
        env
    }
}

impl std::ops::Index<&str> for Env {
    type Output = OsString;
    fn index(&self, name: &str) -> &OsString {
        self.get(name)
            .unwrap_or_else(|| panic!("no variable {name} in the environment"))
    }
}

impl PartialEq for Env {
    fn eq(&self, other: &Env) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Env {}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect()
    }

    fn pairs(env: &Env) -> Vec<(String, String)> {
        env.iter()
            .map(|(k, v)| (k.clone(), v.to_str().unwrap().to_string()))
            .collect()
    }

    #[test]
    fn a_shared_environment_reads_as_the_one_it_was() {
        let first = env(&[("A", "1"), ("LIST", "a b c"), ("ONLY_FIRST", "x")]);
        let second = env(&[("A", "2"), ("B", "b"), ("LIST", "a b c"), ("Z", "z")]);
        let mut common = Common::default();
        let shared = [
            common.share(&first),
            common.share(&second),
            common.share(&Env::new()),
        ];
        for (before, after) in [first, second, Env::new()].iter().zip(&shared) {
            assert_eq!(pairs(before), pairs(after));
            assert_eq!(before, after);
            assert_eq!(before.len(), after.len());
            for (k, v) in before {
                assert_eq!(after.get(k), Some(v));
                assert_eq!(after.get_key_value(k), Some((k, v)));
            }
            assert_eq!(after.clone().into_iter().collect::<Env>(), *before);
        }
        // Only the differences are the second's own.
        let own: Vec<&String> = shared[1].own.keys().collect();
        assert_eq!(own, ["A", "B", "ONLY_FIRST", "Z"]);
        assert_eq!(shared[1].get("ONLY_FIRST"), None);
        assert!(!shared[1].contains_key("ONLY_FIRST"));
    }

    #[test]
    fn changes_to_a_shared_environment_are_its_own() {
        let mut common = Common::default();
        let first = common.share(&env(&[("A", "1"), ("B", "2")]));
        let mut second = common.share(&env(&[("A", "1"), ("B", "2")]));
        second.insert("A".into(), "changed".into());
        second.insert("C".into(), "3".into());
        assert_eq!(
            pairs(&second),
            [("A", "changed"), ("B", "2"), ("C", "3")].map(|(k, v)| (k.into(), v.into()))
        );
        assert_eq!(
            pairs(&first),
            [("A", "1"), ("B", "2")].map(|(k, v)| (k.into(), v.into()))
        );
    }
}
