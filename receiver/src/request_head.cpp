#include "request_head.hpp"
