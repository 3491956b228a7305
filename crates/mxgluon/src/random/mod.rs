//! Random numbers: a seeded, counter-based (Philox4x32-10) generator whose draws do not depend
//! on the thread count.
