"""ocirun: an OCI runtime. The CLI lives in runtime.cli; everything else is the library it calls."""
__version__ = "0.1.0"
