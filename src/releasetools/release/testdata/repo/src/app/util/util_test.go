package util

// Excluded from the package by excluded_files.
