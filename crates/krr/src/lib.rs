//! TODO(role doc)
