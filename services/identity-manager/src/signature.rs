//! Qualified signatures on signed request forms and CNS client certificates (IDN-1 c, d). Being written.
