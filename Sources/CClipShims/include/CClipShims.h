#include "clip_zlib.h"
#include "clip_fs.h"
