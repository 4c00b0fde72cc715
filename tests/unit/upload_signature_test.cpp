#include "transfer/upload_signature.hpp"
