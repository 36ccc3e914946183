import sys, os, time, subprocess, tempfile
sys.path.insert(0, '/work/main/tests/guest')
from api_test import call, Guest
mv='/work/main/build/vmm/microvm'; elf='/work/main/build/tests/guest/guest-elf64.elf'
tmp=tempfile.mkdtemp()
sock=tmp+'/api.sock'; disk=tmp+'/d.img'
open(disk,'wb').truncate(4<<20)
g=Guest([mv,'--kernel',elf,'--disk',disk,'--mem','64M','--api-sock',sock,'--timeout','300','--cmdline','blk.seq=vda:1000:1000000'])
g.wait_out('blk: seq 40\n', timeout=120)
print(call(sock,'POST','/vm/pause'))
print(call(sock,'POST','/vm/snapshot','{"path":"%s/z","compress":true}'%tmp))
print(call(sock,'POST','/vm/snapshot','{"path":"%s/r"}'%tmp))
print(call(sock,'POST','/vm/stop'))
g.p.wait()
for d in ('z','r'):
    t=time.time()
    r=subprocess.run([mv,'--restore',tmp+'/'+d,'--timeout','60','-v'],capture_output=True)
    print(d, r.returncode, time.time()-t, r.stdout[:200], r.stdout[-300:], r.stderr[-1500:])
