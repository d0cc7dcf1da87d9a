"""The SGX mutating admission webhook: pod mutation, AdmissionReview handling, HTTPS server."""
