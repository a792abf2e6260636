#include "clip_zlib.h"
#include "clip_fs.h"
#include "clip_curl.h"
#include "clip_spawn.h"
