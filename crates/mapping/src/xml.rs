//! Small helpers over `minidom` shared by the Jingle codec and the SDP mapper.

use crate::ns;
use minidom::Element;
use minidom::rxml::{Namespace, NcName};

/// Sets an attribute in no namespace. `name` is always one of our own static,
/// valid names; an invalid one is skipped rather than panicking.
pub(crate) fn set_attr(el: &mut Element, name: &str, value: impl Into<String>) {
    if let Ok(name) = NcName::try_from(name) {
        el.set_attr(Namespace::NONE, name, value.into());
    }
}

/// An element in `namespace` with the given attributes (in order).
pub(crate) fn element(name: &str, namespace: &str, attrs: &[(&str, &str)]) -> Element {
    let mut el = Element::bare(name, namespace);
    for (n, v) in attrs {
        set_attr(&mut el, n, *v);
    }
    el
}

/// The attributes of `el` other than `known` (namespace-less names), packed
/// into a carrier element; `None` when there are none.
pub(crate) fn unknown_attributes(el: &Element, known: &[&str]) -> Option<Element> {
    let mut carrier = Element::bare("attributes", ns::STOX_ATTRIBUTES);
    for ((namespace, name), value) in el.attrs().iter() {
        if namespace.is_none() && known.contains(&name.as_str()) {
            continue;
        }
        carrier
            .attrs_mut()
            .insert(namespace.clone(), name.clone(), value.clone());
    }
    (!carrier.attrs().is_empty()).then_some(carrier)
}

/// Is `el` an attribute carrier made by [`unknown_attributes`]?
pub(crate) fn is_carrier(el: &Element) -> bool {
    el.is("attributes", ns::STOX_ATTRIBUTES)
}

/// Appends `other` to `target`: carriers become attributes of `target`
/// (never overwriting one already set), everything else a child.
pub(crate) fn append_other(target: &mut Element, other: &[Element]) {
    for el in other {
        if is_carrier(el) {
            for ((namespace, name), value) in el.attrs().iter() {
                if !target.attrs().contains_key(namespace, name) {
                    target
                        .attrs_mut()
                        .insert(namespace.clone(), name.clone(), value.clone());
                }
            }
        } else {
            target.append_child(el.clone());
        }
    }
}
