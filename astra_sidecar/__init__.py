"""The `astra` command line: the compiler's verbs and the sidecar's `serve`, in one program."""
