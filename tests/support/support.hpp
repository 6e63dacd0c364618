// tests/support — test doubles shared by unit tests.
#pragma once
#include "support/memory_stream.hpp"
