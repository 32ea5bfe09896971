#!/bin/bash
# A long-running stand-in for a server process.
exec sleep 1000000
