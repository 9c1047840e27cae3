// macOS links an extension module with the interpreter's symbols left to load time.
fn main() {
    pyo3_build_config::add_extension_module_link_args();
}
