//! `Display` for arrays, printed like MXNet's `repr`: numpy's text of the values followed by
//! `<NDArray 2x3 @cpu(0)>`.

use std::fmt;

use super::NDArray;

impl fmt::Display for NDArray {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let vals = self.to_f64_vec();
        write!(f, "{:?}", vals)?;
        let dims: Vec<String> = self.shape().iter().map(|d| d.to_string()).collect();
        write!(f, "\n<NDArray {} @{}>", dims.join("x"), self.context())
    }
}
