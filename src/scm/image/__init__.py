"""Confidential guest images: build Debian TDX/SGX guests from scratch, and check images."""
