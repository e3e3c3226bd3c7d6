//! A copy of a record when its type is `Clone`, for the derive to use without requiring `Clone`.
//!
//! `#[derive(Versioned)]` does not ask users for `Clone`, yet a backend that keeps records as
//! values (the memory backend) can store a clone instead of a row. The derive implements
//! [`Entity::copy`](crate::Entity::copy) by calling `(&Copier(self)).copy()` with both traits in
//! scope: method resolution picks [`CopyByClone`] when the (concrete) type is `Clone`, and falls
//! back to [`NoCopy`] one auto-reference further otherwise ("autoref specialization").

/// The record a copy is asked of.
pub struct Copier<'a, T>(pub &'a T);

/// Chosen when the record is `Clone`: a clone.
pub trait CopyByClone<T> {
    /// A clone of the record.
    fn copy(&self) -> Option<T>;
}

impl<T: Clone> CopyByClone<T> for Copier<'_, T> {
    fn copy(&self) -> Option<T> {
        Some(self.0.clone())
    }
}

/// Chosen otherwise: no copy.
pub trait NoCopy<T> {
    /// Nothing: the record cannot be copied.
    fn copy(&self) -> Option<T>;
}

impl<T> NoCopy<T> for &Copier<'_, T> {
    fn copy(&self) -> Option<T> {
        None
    }
}

#[cfg(test)]
mod tests {
    #[allow(unused_imports)]
    use super::{Copier, CopyByClone as _, NoCopy as _};

    #[derive(Clone, PartialEq, Debug)]
    struct Cloned(u8);
    struct NotCloned;

    #[test]
    // The explicit borrow is what the derive writes: it makes the fallback one autoref away.
    #[allow(clippy::needless_borrow)]
    fn a_clone_type_is_copied_and_another_is_not() {
        assert_eq!((&Copier(&Cloned(7))).copy(), Some(Cloned(7)));
        assert!((&Copier(&NotCloned)).copy().is_none());
    }
}
