//! Copies of a record when its types are `Clone`, for the derive to use without requiring `Clone`.
//!
//! `#[derive(Versioned)]` does not ask users for `Clone`, yet a backend that keeps records as
//! values (the memory backend) can store a clone instead of a row. The derive implements
//! [`Entity::copy`](crate::Entity::copy) by calling `(&Copier(self)).copy()` with both traits in
//! scope: method resolution picks [`CopyByClone`] when the (concrete) type is `Clone`, and falls
//! back to [`NoCopy`] one auto-reference further otherwise ("autoref specialization").
//!
//! [`Entity::copy_into`](crate::Entity::copy_into) is the same choice made per field, through
//! [`Probe`]: each field is copied with its type's `clone_from`, which reuses what the
//! destination already holds (a `String`'s buffer), where a derived `Clone` would allocate anew.

use std::marker::PhantomData;

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

/// A field type asked whether it is `Clone`: `(&Probe::<F>::NEW).clone_from_fn()` is `F`'s
/// `clone_from` when it is, `None` otherwise.
pub struct Probe<F>(PhantomData<F>);

impl<F> Probe<F> {
    /// The probe of `F`.
    pub const NEW: Self = Probe(PhantomData);
}

/// The copy of one field of a [`Clone`] type into another.
pub type CloneFrom<F> = fn(&mut F, &F);

/// Chosen when the field's type is `Clone`: its `clone_from`.
pub trait CloneFromByClone<F> {
    /// `F::clone_from`.
    fn clone_from_fn(&self) -> Option<CloneFrom<F>>;
}

impl<F: Clone> CloneFromByClone<F> for Probe<F> {
    #[inline]
    fn clone_from_fn(&self) -> Option<CloneFrom<F>> {
        Some(F::clone_from)
    }
}

/// Chosen otherwise: nothing.
pub trait NoCloneFrom<F> {
    /// Nothing: the field cannot be copied.
    fn clone_from_fn(&self) -> Option<CloneFrom<F>>;
}

impl<F> NoCloneFrom<F> for &Probe<F> {
    #[inline]
    fn clone_from_fn(&self) -> Option<CloneFrom<F>> {
        None
    }
}

#[cfg(test)]
mod tests {
    #[allow(unused_imports)]
    use super::{CloneFromByClone as _, Copier, CopyByClone as _, NoCloneFrom as _, NoCopy as _, Probe};

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

    #[test]
    #[allow(clippy::needless_borrow)]
    fn a_clone_field_is_copied_in_place_and_another_is_not() {
        let copy = (&Probe::<String>::NEW).clone_from_fn().expect("String is Clone");
        let mut dst = String::with_capacity(64);
        let buffer = dst.as_ptr();
        copy(&mut dst, &"person 7".to_owned());
        assert_eq!(dst, "person 7");
        assert_eq!(dst.as_ptr(), buffer, "clone_from reuses the destination's buffer");
        assert!((&Probe::<NotCloned>::NEW).clone_from_fn().is_none());
    }
}
